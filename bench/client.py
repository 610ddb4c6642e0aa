"""Client benchmark against a running bus: what a client on another host sees (the compose file's
`bench` container runs it against `bus:7170`). Unlike the other benchmarks it starts no server;
it reads and writes through the bus at --server and prints a table.

    python bench/client.py --server bus:7170 [--seconds 1] [--addr 0x100000]

Rows: single reads and writes (Rw, one in flight), pipelined reads (RwStream, 64 in flight),
batches of 1000 reads (RwBatch), and a 1 MiB load and dump (cut to the server's limits). It writes
only RAM in [--addr, --addr + 1 MiB), which must be RAM.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mmiobus.client import AsyncBus, BusError, Read
from mmiobus.endpoints import AddressError, default_server, parse_address

BATCH = 1000
BLOCK = 1 << 20


@dataclass
class Row:
    name: str
    ops: float  # accesses (or MiB, for transfers) per second
    unit: str
    p50_us: float


async def _timed(
    name: str, call: Callable[[], Awaitable[object]], seconds: float, inflight: int = 1,
    per_call: int = 1, unit: str = "accesses/s",
) -> Row:  # fmt: skip
    """Run ``call`` from ``inflight`` workers for ``seconds``."""
    latencies: list[float] = []
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t)
            done += per_call

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed = time.perf_counter() - start
    return Row(name, done / elapsed, unit, statistics.median(latencies) * 1e6 if latencies else 0)


async def measure(server: str, seconds: float, addr: int) -> list[Row]:
    """Every row, measured against the bus at ``server``."""
    async with AsyncBus(server) as bus:
        await bus.write(addr, bytes(4))  # fails now, with its reason, if addr is not writable
        rows = [
            await _timed("Rw read, 4 bytes, 1 in flight", lambda: bus.read(addr, 4), seconds),
            await _timed(
                "Rw write, 4 bytes, 1 in flight", lambda: bus.write(addr, b"\x2a" * 4), seconds
            ),
        ]
        async with bus.stream() as s:
            rows.append(
                await _timed("RwStream read, 64 in flight", lambda: s.read(addr, 4), seconds, 64)
            )
        reads = [Read(addr + 4 * (i % 256), 4) for i in range(BATCH)]
        rows.append(
            await _timed(
                f"RwBatch of {BATCH} reads", lambda: bus.batch(reads), seconds, per_call=BATCH
            )
        )
        block = bytes(range(256)) * (BLOCK // 256)
        step = min(bus.info.limits.max_access_bytes, BLOCK)
        writes = [(addr + i, block[i : i + step]) for i in range(0, BLOCK, step)]

        async def load() -> None:
            for a, data in writes:
                await bus.write(a, data)

        async def dump() -> None:
            await bus.batch([Read(a, len(data)) for a, data in writes])

        rows.append(await _timed("load 1 MiB", load, seconds, unit="MiB/s"))
        rows.append(await _timed("dump 1 MiB", dump, seconds, unit="MiB/s"))
    return rows


def table(server: str, rows: list[Row]) -> list[str]:
    lines = [
        f"client benchmark against the bus at {server}",
        f"  {'row':<36}{'rate':>14} {'':<11}{'p50 us':>10}",
    ]
    for r in rows:
        lines.append(f"  {r.name:<36}{r.ops:>14,.1f} {r.unit:<11}{r.p50_us:>10,.0f}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        "-s",
        default=None,
        help="the bus (default: $MMIOBUS_SERVER or 127.0.0.1:7170)",
    )
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="how long each row runs (default: %(default)g)"
    )
    parser.add_argument(
        "--addr",
        type=lambda text: int(text, 0),
        default=0x100000,
        help="the first of the 1 MiB of RAM it may write (default: 0x100000)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        server = parse_address(args.server or default_server())
        rows = asyncio.run(measure(server, args.seconds, args.addr))
    except (AddressError, BusError) as e:
        print(f"bench/client.py: error: {e}", file=sys.stderr)
        return 1
    print("\n".join(table(server, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
