"""A target that remembers the last write and who made it (``LastWriter``): the DMA and SDK
tests read back the requester id and security a write carried."""

from __future__ import annotations

from mmiobus.devices import Device

R_VALUE, R_REQUESTER, R_COUNT, R_SECURE = 0x00, 0x08, 0x10, 0x18


class LastWriter(Device):
    """Remembers the last write: a write anywhere below 0x08 stores its value and attributes;
    reads give VALUE (0x00), the writer's REQUESTER id (0x08), the write COUNT (0x10) and
    SECURE (0x18)."""

    size = 0x20

    def __init__(self) -> None:
        super().__init__()
        self.value = self.requester = self.count = self.secure = 0

    def read(self, offset: int, size: int) -> int:
        return {
            R_VALUE: self.value,
            R_REQUESTER: self.requester,
            R_COUNT: self.count,
            R_SECURE: self.secure,
        }.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        attrs = self.access_attrs
        assert attrs is not None
        self.value, self.count = value, self.count + 1
        self.requester, self.secure = attrs.requester_id, int(attrs.secure)

    def reset(self) -> None:
        self.value = self.requester = self.count = self.secure = 0
