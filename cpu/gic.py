"""A GICv2 (distributor + CPU interface) for one CPU, served inside the CPU process.

Enough of the GIC architecture specification v2 for firmware and a simple
kernel: group/enable/pending/active/priority/target/config registers of the
distributor, and CTLR/PMR/BPR/IAR/EOIR/RPR/HPPIR/DIR of the CPU interface.
Interrupts 0-15 are SGIs, 16-31 PPIs (e.g. 27 virtual timer, 30 physical
timer), 32.. SPIs (SPI n is ``32 + n``, as in a device tree's ``<0 n flags>``).
All inputs are level-sensitive; :meth:`Gic.set_irq` may be called from any thread.
No security extensions, no priority grouping (BPR is stored, not used).
"""

from __future__ import annotations

from collections.abc import Callable

SPURIOUS = 1023


class Gic:
    """GICv2 state. ``on_change`` is called when the CPU's IRQ line may have changed."""

    DIST_SIZE = 0x10000
    CPU_SIZE = 0x10000

    def __init__(self, num_irqs: int = 288, on_change: Callable[[], None] | None = None) -> None:
        self.n = num_irqs
        self.on_change = on_change
        self.dist_enabled = self.cpu_enabled = False
        self.group = self.enabled = self.pending = self.active = self.level = 0
        self.priority = [0] * num_irqs
        self.config = [0] * (num_irqs // 16)
        self.pmr = self.bpr = 0
        self.running: list[tuple[int, int]] = []  # (priority, irq) of active interrupts, nested
        self._line = False
        self.enabled = 0xFFFF  # SGIs are always enabled on GICv2 implementations like QEMU's

    # ---- inputs and output ----------------------------------------------------------
    def set_irq(self, irq: int, level: bool) -> None:
        """Drive input *irq* (16..n-1) to *level*."""
        if not 16 <= irq < self.n:
            raise ValueError(f"GIC input {irq} out of range 16..{self.n - 1}")
        bit = 1 << irq
        if level:
            self.level |= bit
            self.pending |= bit
        else:
            self.level &= ~bit
            if not self._edge(irq):
                self.pending &= ~bit
        self._update()

    def _edge(self, irq: int) -> bool:
        return bool(self.config[irq // 16] >> ((irq % 16) * 2 + 1) & 1)

    def highest(self) -> int:
        """The pending, enabled interrupt with the highest priority (lowest value), or SPURIOUS."""
        best, best_prio = SPURIOUS, 0x100
        cand = self.pending & self.enabled & ~self.active
        while cand:
            irq = (cand & -cand).bit_length() - 1
            cand &= cand - 1
            if self.priority[irq] < best_prio:
                best, best_prio = irq, self.priority[irq]
        return best

    def running_priority(self) -> int:
        return self.running[-1][0] if self.running else 0x100

    def irq_line(self) -> bool:
        """Whether the CPU interface signals IRQ to the core now."""
        if not (self.dist_enabled and self.cpu_enabled):
            return False
        irq = self.highest()
        if irq == SPURIOUS:
            return False
        prio = self.priority[irq]
        return prio < self.pmr and prio < self.running_priority()

    def _update(self) -> None:
        line = self.irq_line()
        if line != self._line:
            self._line = line
            if self.on_change is not None:
                self.on_change()

    # ---- distributor --------------------------------------------------------------
    def _bits(self, offset: int, base: int) -> int:
        return (offset - base) * 8  # first interrupt covered by a 32-bit word at offset

    def dist_read(self, offset: int, size: int) -> int:
        if offset == 0x000:
            return int(self.dist_enabled)
        if offset == 0x004:
            return (self.n // 32) - 1  # ITLinesNumber, one CPU, no security extensions
        if offset == 0x008:
            return 0x0200043B
        for base, value in (
            (0x080, self.group),
            (0x100, self.enabled),
            (0x180, self.enabled),
            (0x200, self.pending),
            (0x280, self.pending),
            (0x300, self.active),
            (0x380, self.active),
        ):
            if base <= offset < base + 0x80:
                return value >> self._bits(offset, base) & ((1 << size * 8) - 1)
        if 0x400 <= offset < 0x400 + self.n:
            first = offset - 0x400
            return sum(
                self.priority[first + i] << (8 * i) for i in range(size) if first + i < self.n
            )
        if 0x800 <= offset < 0x800 + self.n:
            return int.from_bytes(bytes([1] * size), "little")  # everything targets CPU 0
        if 0xC00 <= offset < 0xC00 + self.n // 4:
            return self.config[(offset - 0xC00) // 4]
        if offset == 0xFE8:
            return 0x2B  # PIDR2: architecture version 2
        return 0

    def dist_write(self, offset: int, size: int, value: int) -> None:
        if offset == 0x000:
            self.dist_enabled = bool(value & 1)
        elif 0x080 <= offset < 0x100:
            shift = self._bits(offset, 0x080)
            mask = ((1 << size * 8) - 1) << shift
            self.group = (self.group & ~mask) | ((value << shift) & mask)
        elif 0x100 <= offset < 0x400:
            base = offset & ~0x7F
            bits = (value << self._bits(offset, base)) & ((1 << self.n) - 1)
            if base == 0x100:
                self.enabled |= bits
            elif base == 0x180:
                self.enabled &= ~bits | 0xFFFF
            elif base == 0x200:
                self.pending |= bits
            elif base == 0x280:
                self.pending &= ~bits | self.level
            elif base == 0x300:
                self.active |= bits
            else:
                self.active &= ~bits
        elif 0x400 <= offset < 0x400 + self.n:
            for i in range(size):
                if offset - 0x400 + i < self.n:
                    self.priority[offset - 0x400 + i] = (value >> (8 * i)) & 0xFF
        elif 0xC00 <= offset < 0xC00 + self.n // 4:
            self.config[(offset - 0xC00) // 4] = value & 0xFFFFFFFF
        elif offset == 0xF00:  # SGIR: only "this CPU" targets make sense here
            self.pending |= 1 << (value & 0xF)
        else:
            return
        self._update()

    # ---- CPU interface ------------------------------------------------------------
    def cpu_read(self, offset: int, size: int) -> int:
        if offset == 0x00:
            return int(self.cpu_enabled)
        if offset == 0x04:
            return self.pmr
        if offset == 0x08:
            return self.bpr
        if offset == 0x0C:  # IAR: acknowledge
            irq = self.highest()
            if irq == SPURIOUS or not self.irq_line():
                return SPURIOUS
            self.active |= 1 << irq
            if self._edge(irq) or not self.level >> irq & 1:
                self.pending &= ~(1 << irq)
            self.running.append((self.priority[irq], irq))
            self._update()
            return irq
        if offset == 0x14:
            return self.running_priority() & 0xFF
        if offset == 0x18:
            return self.highest()
        if offset == 0xFC:
            return 0x0202043B
        return 0

    def cpu_write(self, offset: int, size: int, value: int) -> None:
        if offset == 0x00:
            self.cpu_enabled = bool(value & 1)
        elif offset == 0x04:
            self.pmr = value & 0xFF
        elif offset == 0x08:
            self.bpr = value & 7
        elif offset in (0x10, 0x1000):  # EOIR (priority drop + deactivate), DIR
            irq = value & 0x3FF
            self.running = [r for r in self.running if r[1] != irq]
            self.active &= ~(1 << irq)
            if self.level >> irq & 1:
                self.pending |= 1 << irq
        else:
            return
        self._update()


class GicDistributor:
    """The distributor's register window, as a device."""

    def __init__(self, gic: Gic) -> None:
        self.read, self.write = gic.dist_read, gic.dist_write


class GicCpuInterface:
    """The CPU interface's register window, as a device."""

    def __init__(self, gic: Gic) -> None:
        self.read, self.write = gic.cpu_read, gic.cpu_write
