"""A DMA engine: copies LEN bytes from SRC to DST over the bus and signals completion.

Registers (32-bit, little-endian):

    0x00 SRC_LO  0x04 SRC_HI   source address
    0x08 DST_LO  0x0c DST_HI   destination address
    0x10 LEN                    bytes to copy
    0x14 CTRL    bit 0 START (write 1), bit 1 IRQ_ENABLE, bit 2 SYNC (copy inside the write of
                 START, before it is answered, instead of in the background)
    0x18 STATUS  bit 0 BUSY (read-only), bit 1 DONE, bit 2 ERROR (write 1 to clear each)
    0x1c RESULT  MemTxResult bits of the last copy (read-only)

The interrupt line ``DEVICE.irq`` is high while DONE is set and IRQ_ENABLE is on. SYNC mode
makes the copy's DMA part of serving an access, so a copy that reaches this device's own
registers (or a device that reaches back into it) is a re-entrant cycle the bus refuses with
MEMTX_ACCESS_ERROR, which RESULT then shows.
"""

from __future__ import annotations

from mmiobus.devices import Device, Register, RegisterFile

START, IRQ_ENABLE, SYNC = 1, 2, 4
BUSY, DONE, ERROR = 1, 2, 4
CHUNK = 4096


class DmaEngine(Device):
    size = 0x20
    valid = (4, 4)
    impl = (4, 4)

    def __init__(self, address_space: str = "", chunk: int = CHUNK) -> None:
        super().__init__()
        self.address_space = address_space
        self.chunk = max(1, int(chunk))
        self.registers = RegisterFile(
            Register("src_lo", 0x00),
            Register("src_hi", 0x04),
            Register("dst_lo", 0x08),
            Register("dst_hi", 0x0C),
            Register("len", 0x10),
            Register("ctrl", 0x14, mask=IRQ_ENABLE | SYNC, on_write=self._ctrl_written),
            Register("status", 0x18, mask=0, w1c=DONE | ERROR, on_write=self._status_written),
            Register("result", 0x1C, access="ro"),
        )
        self.copies = 0

    async def write(self, offset: int, size: int, value: int) -> None:
        r = self.registers
        assert r is not None
        r.write(offset, size, value)
        if offset == 0x14 and value & START and not r["status"] & BUSY:
            r["status"] = (r["status"] | BUSY) & ~(DONE | ERROR)
            self._update_irq()  # a new copy: the last one's completion is no longer pending
            if value & SYNC:
                await self._copy()
            else:
                self.spawn(self._copy())

    async def _copy(self) -> None:
        r = self.registers
        assert r is not None
        src = r["src_lo"] | r["src_hi"] << 32
        dst = r["dst_lo"] | r["dst_hi"] << 32
        remaining = r["len"]
        result = 0
        while remaining:
            n = min(self.chunk, remaining)
            got = await self.dma_read(src, n, address_space=self.address_space, check=False)
            result |= got.result
            result |= await self.dma_write(
                dst, got.data, address_space=self.address_space, check=False
            )
            src, dst, remaining = src + n, dst + n, remaining - n
        self.copies += 1
        r["result"] = int(result)
        status = (r["status"] & ~BUSY) | DONE | (ERROR if result else 0)
        r["status"] = status
        self._update_irq()

    def _status_written(self, old: int, new: int) -> None:
        self._update_irq()

    def _ctrl_written(self, old: int, new: int) -> None:
        self._update_irq()

    def _update_irq(self) -> None:
        r = self.registers
        assert r is not None
        self.irq().set(bool(r["status"] & DONE and r["ctrl"] & IRQ_ENABLE))
