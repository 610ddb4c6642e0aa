"""RISC-V board devices served inside the CPU process: CLINT, PLIC, sifive_test.

Register layouts follow the SiFive CLINT / ACLINT MSWI+MTIMER and the RISC-V
PLIC specification (one hart: PLIC context 0 is its M-mode, context 1 its
S-mode, as on QEMU's ``virt``). Each device is wired to a
:class:`~.riscv.RiscvEngine` by ``attach(machine, base)``.
"""

from __future__ import annotations

from .bus import BusFault
from .clock import VirtualClock
from .riscv import MEIP, MSIP, MTIP, SEIP, RiscvEngine


def _merge(old: int, offset: int, size: int, value: int, reg_bytes: int = 8) -> int:
    """Replace *size* bytes at byte *offset* of a *reg_bytes*-wide register."""
    shift = offset * 8
    mask = ((1 << (size * 8)) - 1) << shift
    return ((old & ~mask) | ((value << shift) & mask)) & ((1 << (reg_bytes * 8)) - 1)


class Clint:
    """Core-local interruptor: ``msip`` at 0x0, ``mtimecmp`` at 0x4000, ``mtime`` at
    0xbff8 (64-bit registers, 4- or 8-byte accesses). ``mtime`` is the machine's
    :class:`~.clock.VirtualClock`; MTIP is high while mtime >= mtimecmp."""

    SIZE = 0x10000
    MSIP, MTIMECMP, MTIME = 0x0, 0x4000, 0xBFF8

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.msip = 0
        self.mtimecmp = (1 << 64) - 1
        self._offset = 0  # mtime writes move the clock's origin for the guest
        self._latched: int | None = None
        self._machine: RiscvEngine | None = None

    def attach(self, machine: RiscvEngine, base: int = 0x2000000, size: int = SIZE) -> Clint:
        self._machine = machine
        machine.add_device(base, size, self, "clint")
        machine.add_line_source(self.lines)
        machine.add_deadline_source(self.deadline)
        return self

    def mtime(self) -> int:
        return (self.clock.ticks() + self._offset) & ((1 << 64) - 1)

    def lines(self) -> int:
        return (MSIP if self.msip & 1 else 0) | (MTIP if self.mtime() >= self.mtimecmp else 0)

    def deadline(self) -> int | None:
        """Clock tick at which MTIP rises, if in the future."""
        target = self.mtimecmp - self._offset
        return target if target > self.clock.ticks() else None

    def read(self, offset: int, size: int) -> int:
        if offset < 4:
            return self.msip >> (offset * 8) & ((1 << size * 8) - 1)
        if self.MTIMECMP <= offset < self.MTIMECMP + 8:
            return self.mtimecmp >> ((offset - self.MTIMECMP) * 8) & ((1 << size * 8) - 1)
        if self.MTIME <= offset < self.MTIME + 8:
            # A 64-bit load arrives as two 4-byte reads (low half first): latch the
            # value at the low half so the high half matches it (no torn reads).
            if offset == self.MTIME or self._latched is None:
                self._latched = self.mtime()
            value, shift = self._latched, (offset - self.MTIME) * 8
            if offset + size == self.MTIME + 8:
                self._latched = None
            return value >> shift & ((1 << size * 8) - 1)
        return 0  # other harts' registers: reserved, read as zero

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < 4:
            self.msip = value & 1
        elif self.MTIMECMP <= offset < self.MTIMECMP + 8:
            self.mtimecmp = _merge(self.mtimecmp, offset - self.MTIMECMP, size, value)
        elif self.MTIME <= offset < self.MTIME + 8:
            new = _merge(self.mtime(), offset - self.MTIME, size, value)
            self._offset = new - self.clock.ticks()
        else:
            return
        if self._machine is not None:
            self._machine.kick()


class Plic:
    """Platform-level interrupt controller with level-triggered sources 1..n-1.

    Layout: priority[s] at 4*s, pending bits at 0x1000, enable bits of context c
    at 0x2000 + 0x80*c, threshold of c at 0x200000 + 0x1000*c, claim/complete
    at +4. Context 0 drives MEIP, context 1 SEIP. :meth:`set_irq` may be
    called from any thread.
    """

    SIZE = 0x600000

    def __init__(self, num_sources: int = 96, contexts: tuple[int, ...] = (MEIP, SEIP)) -> None:
        self.n = num_sources
        self.context_bits = contexts
        self.priority = [0] * num_sources
        self.level = [False] * num_sources
        self.pending = 0
        self.claimed = 0  # sources in service (claimed, not completed)
        self.enable = [0] * len(contexts)
        self.threshold = [0] * len(contexts)
        self._machine: RiscvEngine | None = None
        self._out = 0

    def attach(self, machine: RiscvEngine, base: int = 0xC000000, size: int = SIZE) -> Plic:
        self._machine = machine
        machine.add_device(base, size, self, "plic")
        machine.add_line_source(lambda: self._out)
        return self

    # ---- interrupt inputs ---------------------------------------------------------
    def set_irq(self, source: int, level: bool) -> None:
        """Drive input *source* (1..n-1) to *level*."""
        if not 0 < source < self.n:
            raise ValueError(f"PLIC source {source} out of range 1..{self.n - 1}")
        self.level[source] = bool(level)
        if level and not self.claimed >> source & 1:
            self.pending |= 1 << source
        self._update()

    def _best(self, ctx: int) -> int:
        """The source context *ctx* would claim now (0 if none)."""
        best, best_prio = 0, self.threshold[ctx]
        cand = self.pending & self.enable[ctx]
        while cand:
            src = (cand & -cand).bit_length() - 1
            cand &= cand - 1
            if self.priority[src] > best_prio:
                best, best_prio = src, self.priority[src]
        return best

    def _update(self) -> None:
        out = 0
        for ctx, bit in enumerate(self.context_bits):
            if self._best(ctx):
                out |= bit
        if out != self._out:
            self._out = out
            if self._machine is not None:
                self._machine.kick()

    # ---- registers --------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if size != 4:
            raise BusFault(offset, size, False, "PLIC registers are 32-bit")
        if offset < 0x1000:
            src = offset // 4
            return self.priority[src] if src < self.n else 0
        if offset < 0x2000:
            return self.pending >> ((offset - 0x1000) * 8) & 0xFFFFFFFF
        if offset < 0x200000:
            ctx, word = divmod(offset - 0x2000, 0x80)
            return self.enable[ctx] >> (word * 32) & 0xFFFFFFFF if ctx < len(self.enable) else 0
        ctx, reg = divmod(offset - 0x200000, 0x1000)
        if ctx >= len(self.threshold):
            return 0
        if reg == 0:
            return self.threshold[ctx]
        if reg == 4:  # claim
            src = self._best(ctx)
            if src:
                self.pending &= ~(1 << src)
                self.claimed |= 1 << src
                self._update()
            return src
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if size != 4:
            raise BusFault(offset, size, True, "PLIC registers are 32-bit")
        if offset < 0x1000:
            src = offset // 4
            if 0 < src < self.n:
                self.priority[src] = value & 7
        elif offset < 0x2000:
            return  # pending bits are read-only
        elif offset < 0x200000:
            ctx, word = divmod(offset - 0x2000, 0x80)
            if ctx < len(self.enable):
                mask = 0xFFFFFFFF << (word * 32)
                bits = (value << (word * 32)) & mask & ~1 & ((1 << self.n) - 1)
                self.enable[ctx] = (self.enable[ctx] & ~mask) | bits
        else:
            ctx, reg = divmod(offset - 0x200000, 0x1000)
            if ctx >= len(self.threshold):
                return
            if reg == 0:
                self.threshold[ctx] = value & 7
            elif reg == 4 and 0 < value < self.n:  # complete
                self.claimed &= ~(1 << value)
                if self.level[value]:
                    self.pending |= 1 << value
            else:
                return
        self._update()


class SifiveTest:
    """The ``sifive,test0`` finisher: writing 0x5555 powers off (exit code 0),
    0x3333 | code << 16 powers off with *code*, 0x7777 resets. Either ends the
    run with ``GUEST_EXIT``."""

    SIZE = 0x1000

    def __init__(self) -> None:
        self._machine: RiscvEngine | None = None

    def attach(self, machine: RiscvEngine, base: int = 0x100000, size: int = SIZE) -> SifiveTest:
        self._machine = machine
        machine.add_device(base, size, self, "sifive_test")
        return self

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset != 0 or self._machine is None:
            return
        status, code = value & 0xFFFF, (value >> 16) & 0xFFFF
        if status == 0x5555:
            self._machine.guest_exit(0, "poweroff")
        elif status == 0x3333:
            self._machine.guest_exit(code, "poweroff")
        elif status == 0x7777:
            self._machine.guest_exit(0, "reset")
