"""Interrupt lines driven by writes (``IrqLines``): the interrupt tests raise, lower, pulse and
storm them from a client."""

from __future__ import annotations

import asyncio

from mmiobus.devices import Device

LINES = ("irq", "tx", "rx", "err")
PULSE = 0x80  # a write at PULSE + 8 * i pulses line i
STORM = 0xF0  # a write of N here pulses line "storm" N times in the background, yielding between


class IrqLines(Device):
    """Interrupt lines driven by writes: offset 8*i sets line LINES[i] to (value != 0),
    PULSE + 8*i pulses it, STORM starts a storm of pulses; a read at 8*i gives the device's idea
    of its level."""

    size = 0x100

    def read(self, offset: int, size: int) -> int:
        return int(self.irq(LINES[offset // 8 % len(LINES)]).level)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == STORM:
            self.spawn(self._storm(value))
            return
        line = self.irq(LINES[offset // 8 % len(LINES)])
        if offset >= PULSE:
            line.pulse()
        else:
            line.set(bool(value))

    async def _storm(self, count: int) -> None:
        for _ in range(count):
            self.irq("storm").pulse()
            await asyncio.sleep(0)
