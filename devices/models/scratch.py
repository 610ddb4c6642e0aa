"""A scratch RAM served by a device: bytes you can read and write at any size up to 8."""

from __future__ import annotations

from mmiobus.devices import Device


class ScratchRam(Device):
    """``size`` bytes of memory behind MMIO (little-endian values, like the bus's bytes).

    Useful to test a bus through a real device, and as the smallest example of a model.
    """

    valid = (1, 8)
    impl = (1, 8)
    endianness = "little"

    def __init__(self, size: int = 0x1000, fill: int = 0) -> None:
        super().__init__()
        self.size = int(size)
        self.fill = int(fill) & 0xFF
        self.memory = bytearray([self.fill]) * self.size

    def read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.memory[offset : offset + size].ljust(size, b"\0"), "little")

    def write(self, offset: int, size: int, value: int) -> None:
        end = min(offset + size, self.size)
        if offset < end:
            self.memory[offset:end] = value.to_bytes(size, "little")[: end - offset]

    def reset(self) -> None:
        self.memory[:] = bytearray([self.fill]) * self.size
