"""A small device model to test: a control register whose bit 0 drives an interrupt line, a
status register that counts the writes to it (write 1 to clear), and an id register."""

from __future__ import annotations

from mmiobus.devices import Device, Register, RegisterFile

BLINKER_ID = 0xB11C


class Blinker(Device):
    size = 0x10
    valid = impl = (4, 4)

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.registers = RegisterFile(
            Register("ctrl", 0x0, on_write=self._ctrl),
            Register("status", 0x4, w1c=0x1),
            Register("id", 0x8, reset=BLINKER_ID, access="ro"),
        )

    def _ctrl(self, old: int, new: int) -> None:
        self.writes += 1
        self.registers["status"] |= 1
        self.irq().set(bool(new & 1))
