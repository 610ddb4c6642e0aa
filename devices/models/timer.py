"""A periodic / one-shot timer that raises an interrupt when it expires.

Registers (32-bit, little-endian):

    0x00 CTRL    bit 0 ENABLE, bit 1 PERIODIC, bit 2 IRQ_ENABLE
    0x04 STATUS  bit 0 EXPIRED (write 1 to clear; the interrupt line follows it while enabled)
    0x08 PERIOD  period in microseconds (>= 1)
    0x0c COUNT   expirations since reset (read-only)

Writing CTRL with ENABLE starts (or restarts) the countdown; a one-shot timer clears ENABLE
when it fires. The interrupt line is ``DEVICE.irq``.
"""

from __future__ import annotations

import asyncio

from mmiobus.devices import Device, Register, RegisterFile

ENABLE, PERIODIC, IRQ_ENABLE = 1, 2, 4
EXPIRED = 1


class Timer(Device):
    size = 0x10
    valid = (4, 4)
    impl = (4, 4)

    def __init__(self, period_us: int = 1000) -> None:
        super().__init__()
        self.registers = RegisterFile(
            Register("ctrl", 0x0, mask=0x7, on_write=self._ctrl),
            Register("status", 0x4, mask=0, w1c=EXPIRED, on_write=self._status),
            Register("period", 0x8, reset=max(1, int(period_us))),
            Register("count", 0xC, access="ro"),
        )
        self._task: asyncio.Task[None] | None = None

    def _ctrl(self, old: int, new: int) -> None:
        self._stop_countdown()
        if new & ENABLE and self.attached:
            self._task = self.spawn(self._countdown())
        self._update_irq()

    def _status(self, old: int, new: int) -> None:
        self._update_irq()

    def _update_irq(self) -> None:
        r = self.registers
        assert r is not None
        self.irq().set(bool(r["status"] & EXPIRED and r["ctrl"] & IRQ_ENABLE))

    def _stop_countdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _countdown(self) -> None:
        r = self.registers
        assert r is not None
        while r["ctrl"] & ENABLE:
            await asyncio.sleep(max(1, r["period"]) / 1e6)
            r["count"] = r["count"] + 1
            r["status"] = r["status"] | EXPIRED
            if not r["ctrl"] & PERIODIC:
                r["ctrl"] = r["ctrl"] & ~ENABLE
            self._update_irq()

    def reset(self) -> None:
        self._stop_countdown()
        super().reset()

    def stop(self) -> None:
        self._stop_countdown()
