"""In-process memory-model benchmarks: RAM reads through the public API, and rendering.

Targets (issue "The memory model"): >= 300,000 4-byte RAM reads/s; the 100,000-region machine
within 1.3x of the 10-region one; rendering 100,000 regions at most 15x the time of 10,000.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from mmiobus.memory import MemorySystem
from mmiobus.memory.flatview import render

PAGE = 0x1000


RAM_SIZE = 8 << 20


def machine(regions: int) -> tuple[MemorySystem, list[int]]:
    """Two 8 MiB RAMs with ``regions - 2`` MMIO devices of 4 KiB between them, and 100,000
    random 4-byte reads that alternate between the two RAMs. Alternating defeats the
    most-recently-used range, so every read does the binary search over the whole flat view;
    only the number of regions differs between machines."""
    ms = MemorySystem()
    root = ms.container("system", 1 << 64)
    devices = regions - 2
    low, high = 0, RAM_SIZE + (devices + 1) * 2 * PAGE
    with ms.transaction():
        root.add_subregion(low, ms.ram("ram-low", RAM_SIZE))
        for i in range(devices):
            root.add_subregion(RAM_SIZE + (i + 1) * 2 * PAGE, ms.mmio(f"dev{i}", PAGE))
        root.add_subregion(high, ms.ram("ram-high", RAM_SIZE))
    ms.address_space("memory", root)
    rng = random.Random(1)
    addrs = [(low, high)[i % 2] + rng.randrange(RAM_SIZE - 4) for i in range(100_000)]
    return ms, addrs


def spread_machine(regions: int) -> tuple[MemorySystem, list[int]]:
    """``regions`` RAM regions of 4 KiB, and reads spread over all of them: the working set is
    then ``regions`` x 4 KiB, so this measures the memory hierarchy as much as the lookup."""
    ms = MemorySystem()
    root = ms.container("system", 1 << 64)
    with ms.transaction():
        for i in range(regions):
            root.add_subregion(i * 2 * PAGE, ms.ram(f"ram{i}", PAGE))
    ms.address_space("memory", root)
    rng = random.Random(1)
    addrs = [rng.randrange(regions) * 2 * PAGE + rng.randrange(PAGE - 4) for _ in range(100_000)]
    return ms, addrs


def best_of(runs: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(runs))


def read_rate(ms: MemorySystem, addrs: list[int]) -> float:
    read = ms.address_spaces[0].read

    def once() -> float:
        t = time.perf_counter()
        for a in addrs:
            read(a, 4)
        return time.perf_counter() - t

    return len(addrs) / best_of(5, once)


def render_time(regions: int) -> float:
    ms = MemorySystem()
    root = ms.container("system", 1 << 64)
    with ms.transaction():
        for i in range(regions):
            root.add_subregion(i * 2 * PAGE, ms.mmio(f"dev{i}", PAGE))

    def once() -> float:
        t = time.perf_counter()
        view = render(root)
        elapsed = time.perf_counter() - t
        assert len(view.ranges) == regions
        return elapsed

    return best_of(5, once)


def main() -> list[str]:
    lines = []
    small = read_rate(*machine(10))
    large = read_rate(*machine(100_000))
    spread = read_rate(*spread_machine(100_000))
    lines.append(
        "memory model: 4-byte RAM reads through AddressSpace.read, each one a binary search "
        "(best of 5)"
    )
    lines.append(f"  {'machine':<44}{'reads/s':>12}")
    lines.append(f"  {'2 RAMs + 8 devices (10 regions)':<44}{small:>12,.0f}")
    lines.append(f"  {'2 RAMs + 99,998 devices (100,000 regions)':<44}{large:>12,.0f}")
    ok_rate = min(small, large) >= 300_000
    ok_ratio = small / large <= 1.3
    lines.append(
        f"  slowdown 100k vs 10: {small / large:.2f}x (target <= 1.3x: "
        f"{'met' if ok_ratio else 'MISSED'}); slowest {min(small, large):,.0f}/s "
        f"(target >= 300,000: {'met' if ok_rate else 'MISSED'})"
    )
    lines.append(
        f"  for scale: 100,000 RAM regions of 4 KiB, reads spread over all 400 MiB: "
        f"{spread:,.0f}/s (bound by cache and TLB misses, not by the lookup)"
    )
    lines.append("")
    lines.append("memory model: render + simplify of non-overlapping regions (best of 5)")
    lines.append(f"  {'regions':<22}{'ms':>12}")
    times = {n: render_time(n) for n in (1_000, 10_000, 100_000)}
    for n, t in times.items():
        lines.append(f"  {n:<22,}{t * 1000:>12.1f}")
    ratio = times[100_000] / times[10_000]
    lines.append(
        f"  100k / 10k: {ratio:.1f}x (target <= 15x: {'met' if ratio <= 15 else 'MISSED'})"
    )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
