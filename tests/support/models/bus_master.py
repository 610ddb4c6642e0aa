"""A device that masters the bus on command (``Master``): the DMA tests make it read and write
through the bus from inside its handlers."""

from __future__ import annotations

from mmiobus.devices import Device, Register, RegisterFile
from mmiobus.memory.access import MemTxAttrs

M_ADDR, M_DATA, M_LEN, M_CMD = 0x00, 0x08, 0x10, 0x14
M_RESULT, M_COUNT, M_ATTRS, M_SPACE = 0x18, 0x1C, 0x20, 0x24
CMD_WRITE, CMD_READ = 1, 2


class Master(Device):
    """Makes DMA accesses on command (inside the CMD write, before answering it).

    0x00 ADDR (8 bytes)  0x08 DATA (8 bytes)  0x10 LEN (1..8)
    0x14 CMD: 1 = write LEN bytes of DATA (little-endian) at ADDR, 2 = read LEN bytes at ADDR
              into DATA
    0x18 RESULT: MemTxResult of the last DMA   0x1c COUNT: DMA accesses made
    0x20 ATTRS: when not 0, the DMA carries attributes of the device's own making with this
                requester id (the bus is to stamp the device's requester id over it)
    0x24 SPACE: 0 = the first address space, N = ``spaces[N - 1]``

    ``requester_id`` is the one the device announces to the bus.
    """

    size = 0x28

    def __init__(self, requester_id: int = 0, spaces: list[str] | None = None) -> None:
        super().__init__()
        self.requester_id = int(requester_id)
        self.spaces = ["", *(spaces or [])]
        self.registers = RegisterFile(
            Register("addr", M_ADDR, size=8),
            Register("data", M_DATA, size=8),
            Register("len", M_LEN, reset=8),
            Register("cmd", M_CMD),
            Register("result", M_RESULT, access="ro"),
            Register("count", M_COUNT, access="ro"),
            Register("attrs", M_ATTRS),
            Register("space", M_SPACE),
        )

    async def write(self, offset: int, size: int, value: int) -> None:  # type: ignore[override]
        r = self.registers
        assert r is not None
        r.write(offset, size, value)
        if offset != M_CMD or value not in (CMD_WRITE, CMD_READ):
            return
        n = max(1, min(8, r["len"]))
        attrs = MemTxAttrs(requester_id=r["attrs"]) if r["attrs"] else None
        space = self.spaces[r["space"] % len(self.spaces)]
        r["count"] = r["count"] + 1
        if value == CMD_WRITE:
            data = r["data"].to_bytes(8, "little")[:n]
            result = await self.dma_write(
                r["addr"], data, address_space=space, attrs=attrs, check=False
            )
        else:
            got = await self.dma_read(r["addr"], n, address_space=space, attrs=attrs, check=False)
            r["data"] = int.from_bytes(got.data, "little")
            result = got.result
        r["result"] = int(result)
