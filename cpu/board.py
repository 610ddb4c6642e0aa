"""Building a CPU engine from a ``Layout``: RAM mapped from shared bytes, the board devices the
CPU serves itself, bus windows, the images loaded, the boot registers set.

Boot conventions (QEMU 7.2's virt boards): RISC-V starts at the firmware in M-mode with a0 = hart
id 0 and a1 = the device tree's address; AArch64 starts at the firmware (in flash) at EL1 with
x0 = the device tree's address, the tree at the start of RAM.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unicorn import arm64_const as A
from unicorn import riscv_const as R

from .arm64 import Arm64Engine
from .bus import Bus
from .clock import VirtualClock
from .engine import CpuEngine
from .gic import GicCpuInterface, GicDistributor
from .layout import Layout, LayoutError
from .memory_map import Mapping
from .riscv import RiscvEngine
from .riscv_devices import Clint, Plic, SifiveTest

ACLINT_MTIMER_OFFSET = 0x4000  # where the mtimer follows the swi on QEMU's virt


@dataclass
class Board:
    """An engine ready to run, and how to reach its board devices from the bus."""

    engine: CpuEngine
    layout: Layout
    # region id -> (device, offset of the region's first byte in the device)
    served: dict[str, tuple[Any, int]] = field(default_factory=dict)
    # bus interrupt line -> function setting the controller input it is wired to
    inputs: dict[str, Callable[[bool], None]] = field(default_factory=dict)

    def serve_read(self, region: str, offset: int, size: int) -> int:
        """A bus access to a board device (from another thread than the guest's)."""
        device, base = self.served[region]
        with self.engine.board_lock:
            return int(device.read(base + offset, size))

    def serve_write(self, region: str, offset: int, size: int, value: int) -> None:
        device, base = self.served[region]
        with self.engine.board_lock:
            device.write(base + offset, size, value)

    def set_line(self, line: str, level: bool) -> None:
        """A bus interrupt line changed (any thread)."""
        wired = self.inputs.get(line)
        if wired is not None:
            wired(level)

    def remap(self, layout: Layout, backings: dict[str, mmap.mmap]) -> None:
        """The bus's flat view changed to ``layout`` (made with this board's device places):
        the engine maps it between slices (any thread)."""
        self.layout = layout
        self.engine.remap(mappings(layout, backings))

    def load(self, addr: int, data: bytes, what: str) -> None:
        """Put an image in the guest's RAM or ROM at ``addr``."""
        try:
            self.engine.load(addr, data)
        except ValueError:
            raise LayoutError(
                f"the {what} ({len(data)} bytes at {addr:#x}) does not fit in one RAM or ROM "
                "region the CPU maps"
            ) from None


def build(
    layout: Layout,
    bus: Bus,
    backings: dict[str, mmap.mmap],
    *,
    count_instructions: bool = False,
) -> Board:
    """The engine for ``layout``: RAM and ROM from ``backings`` (region id -> its bytes),
    every window to ``bus``."""
    cpu = layout.cpu
    clock = VirtualClock(cpu.timebase_hz)
    engine: CpuEngine
    if cpu.arch == "riscv64":
        engine = RiscvEngine(clock, bus, count_instructions=count_instructions)
    elif cpu.arch == "aarch64":
        engine = Arm64Engine(clock, bus, count_instructions=count_instructions)
    else:
        raise LayoutError(f"no CPU engine for architecture {cpu.arch!r} (riscv64, aarch64)")
    engine.name = cpu.name
    board = Board(engine, layout)
    if cpu.arch == "riscv64":
        _riscv_board(board, clock)
    else:
        _arm_board(board)
    engine.map_memory(mappings(layout, backings))
    return board


def mappings(layout: Layout, backings: dict[str, mmap.mmap]) -> list[Mapping]:
    """The engine's RAM, ROM and bus windows for ``layout`` (``build``, and ``Board.remap``
    when the bus's flat view changes)."""
    out = []
    for r in layout.ram:
        kind = "rom" if r.readonly else "ram"
        out.append(Mapping(r.base, r.size, r.region, kind, backings[r.region], r.offset))
    out += [Mapping(base, size, "bus", "bus") for base, size in layout.windows]
    return out


def _riscv_board(board: Board, clock: VirtualClock) -> None:
    layout, engine = board.layout, board.engine
    assert isinstance(engine, RiscvEngine)
    swi, _ = layout.board["aclint-swi"]
    mtimer, mtimer_size = layout.board["aclint-mtimer"]
    if mtimer != swi + ACLINT_MTIMER_OFFSET:
        raise LayoutError(
            f"the ACLINT timer must follow its software interrupts by {ACLINT_MTIMER_OFFSET:#x} "
            f"(swi at {swi:#x}, mtimer at {mtimer:#x})"
        )
    clint = Clint(clock).attach(engine, swi, _page_up(mtimer + mtimer_size - swi))
    board.served[layout.board_region("aclint-swi")] = (clint, 0)
    board.served[layout.board_region("aclint-mtimer")] = (clint, ACLINT_MTIMER_OFFSET)
    plic_base, plic_size = layout.board["plic"]
    plic = Plic().attach(engine, plic_base, _page_up(plic_size))
    board.served[layout.board_region("plic")] = (plic, 0)
    if "test" in layout.board:
        test_base, test_size = layout.board["test"]
        test = SifiveTest().attach(engine, test_base, _page_up(test_size))
        board.served[layout.board_region("test")] = (test, 0)
    for line, source in layout.cpu.interrupts.items():
        board.inputs[line] = _wire(plic.set_irq, source)
    engine.uc.reg_write(R.UC_RISCV_REG_A0, 0)
    engine.uc.reg_write(R.UC_RISCV_REG_A1, layout.cpu.fdt_addr)
    engine.pc = layout.cpu.firmware_addr


def _arm_board(board: Board) -> None:
    layout, engine = board.layout, board.engine
    assert isinstance(engine, Arm64Engine)
    dist_base, dist_size = layout.board["gic-distributor"]
    cpu_base, cpu_size = layout.board["gic-cpu"]
    dist = engine.add_device(dist_base, _page_up(dist_size), GicDistributor(engine.gic), "gicd")
    cpuif = engine.add_device(cpu_base, _page_up(cpu_size), GicCpuInterface(engine.gic), "gicc")
    board.served[layout.board_region("gic-distributor")] = (dist, 0)
    board.served[layout.board_region("gic-cpu")] = (cpuif, 0)
    gic = engine.gic
    for line, spi in layout.cpu.interrupts.items():
        board.inputs[line] = _wire(gic.set_irq, 32 + spi)  # SPI n is GIC input 32 + n
    engine.uc.reg_write(A.UC_ARM64_REG_X0, layout.cpu.fdt_addr)
    engine.pc = layout.cpu.firmware_addr


def _wire(set_irq: Callable[[int, bool], None], number: int) -> Callable[[bool], None]:
    """A bus line's level to the controller input ``number``."""

    def wired(level: bool) -> None:
        set_irq(number, level)

    return wired


def _page_up(size: int) -> int:
    return (size + 0xFFF) & ~0xFFF
