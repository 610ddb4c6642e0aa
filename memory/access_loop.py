"""The access loop: QEMU's ``address_space_rw`` (``flatview_read/write_continue``).

One access is carried across a flat view piece by piece. RAM (and ROM reads, and ROM-device
reads in ROMD mode) is copied directly, clamped at the end of its flat range. Everything else
goes to the region's ops one piece at a time: each piece is at most the ops'
``valid.max_access_size`` (4 if unset) and naturally aligned unless the device implements
unaligned accesses (``memory_access_size``), and ``dispatch.memory_region_dispatch_read/write``
take it from there. ``MemTxResult`` bits of every piece are OR-combined, the loop never stops
early, and the address wraps at 2**64. The rules are ACCESS, PIECE, HOLE and ROM in
``docs/memory-rules.md``.

Every piece of an access is issued first — so a remote device receives them together, in
order — and only then are awaitables collected: the loops return their result directly when
nothing needs awaiting (always the case for RAM, ROM and synchronous ops, which therefore never
touch the event loop), and otherwise a ``PendingRead``/``PendingWrite`` whose ``settle()``
coroutine awaits the pieces in issue order.
"""

from __future__ import annotations

from typing import Any

from .access import MASK64, TWO64, UNASSIGNED_MEM_OPS, MemoryRegionOps, MemTxAttrs
from .dispatch import (
    MEMTX_ACCESS_ERROR,
    MEMTX_DECODE_ERROR,
    DevicePiece,
    device_big_endian,
    memory_region_dispatch_read,
    memory_region_dispatch_write,
)
from .flatview import FlatView
from .region import MemoryRegion, RegionKind


def _unassigned_region() -> MemoryRegion:
    # QEMU's io_mem_unassigned: what a hole in a flat view resolves to. It belongs to no system.
    mr = MemoryRegion.__new__(MemoryRegion)
    mr.name = "unassigned"
    mr.kind = RegionKind.MMIO
    mr.size = TWO64
    mr.addr = 0
    mr.ram = mr.rom_device = mr.readonly = False
    mr.ops = UNASSIGNED_MEM_OPS
    mr.backing = None
    return mr


UNASSIGNED_REGION = _unassigned_region()


def pow2floor(n: int) -> int:
    """The largest power of two not above ``n``; ``n`` must be at least 1 (0 raises
    ``ValueError``)."""
    return 1 << (n.bit_length() - 1)


def memory_access_size(ops: MemoryRegionOps, length: int, offset: int) -> int:
    """Largest piece (a power of two) the loop may hand to the region at ``offset``
    (QEMU's ``memory_access_size``; PIECE-1 to PIECE-3).

    ``length`` (at least 1) is what remains of the access; ``offset`` (0..2**64-1) is the
    piece's offset in the region (the address itself for a hole). The answer is 1..8: at most
    ``valid.max_access_size`` (4 when 0) and, unless ``impl.unaligned``, no larger than the
    alignment of ``offset`` (offset 0 is aligned to every size), so an aligned piece never
    runs past 2**64.
    """
    max_size = ops.valid.max_access_size or 4
    if not ops.impl.unaligned:
        align = offset & -offset
        if align and align < max_size:
            max_size = align
    if length > max_size:
        length = max_size
    return pow2floor(length)


def _translate(fv: FlatView, addr: int, length: int) -> tuple[MemoryRegion, int, int]:
    fr = fv.lookup(addr)
    if fr is None:
        return UNASSIGNED_REGION, addr, length
    mr = fr.mr
    if mr.ram:
        # Only RAM is clamped to the range; MMIO pieces may run past it (QEMU's 0xcf8/0xcf9).
        end = fr.end - addr
        return mr, fr.offset + (addr - fr.start), length if length <= end else end
    return mr, fr.offset + (addr - fr.start), length


class PendingRead:
    """A read whose device pieces still need awaiting (``await pending.settle()``)."""

    __slots__ = ("buf", "pieces", "result")

    def __init__(self, buf: bytearray, result: int) -> None:
        self.buf = buf
        self.result = result
        self.pieces: list[tuple[int, int, bool, DevicePiece]] = []

    async def settle(self) -> tuple[bytes, int]:
        """Await the device pieces in issue order and answer ``(bytes, result bits)``, the bytes
        always the access's full length. Call once; afterwards the pending read is spent."""
        buf, result = self.buf, self.result
        for pos, n, big, piece in self.pieces:
            value, r = await piece.settle_read()
            buf[pos : pos + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(
                n, "big" if big else "little"
            )
            result |= r
        return bytes(buf), result

    def abandon(self) -> None:
        """Drop the read without awaiting it: close the awaitables that are coroutines, so no
        "never awaited" warning is left behind. Device pieces already issued stay issued."""
        for *_rest, piece in self.pieces:
            piece.abandon()


class PendingWrite:
    """A write whose device pieces still need awaiting (``await pending.settle()``)."""

    __slots__ = ("pieces", "result")

    def __init__(self, result: int) -> None:
        self.result = result
        self.pieces: list[DevicePiece] = []

    async def settle(self) -> int:
        """Await the device pieces in issue order and answer the OR of every piece's result
        bits. Call once."""
        result = self.result
        for piece in self.pieces:
            result |= await piece.settle_write()
        return result

    def abandon(self) -> None:
        """Drop the write without awaiting it (as ``PendingRead.abandon``)."""
        for piece in self.pieces:
            piece.abandon()


def read_loop(
    fv: FlatView, addr: int, length: int, attrs: MemTxAttrs, native_big: bool
) -> tuple[bytes, int] | PendingRead:
    """QEMU's ``flatview_read``: fill ``length`` bytes from ``addr``; returns (bytes, bits), or
    a ``PendingRead`` when device pieces must be awaited. Every piece is issued first."""
    buf = bytearray(length)
    pos = 0
    result = 0
    pending = None
    mr, xlat, n = _translate(fv, addr, length)
    if attrs.memory and not mr.ram:
        return bytes(buf), MEMTX_ACCESS_ERROR
    while True:
        direct = mr.ram or (mr.rom_device and mr.romd_mode)
        backing = mr.backing  # never None when direct
        if attrs.memory and not mr.ram:
            result |= MEMTX_ACCESS_ERROR
        elif direct and backing is not None and xlat < len(backing):
            if n > len(backing) - xlat:
                n = len(backing) - xlat
            buf[pos : pos + n] = backing[xlat : xlat + n]
        else:
            ops = mr.ops if not direct else UNASSIGNED_MEM_OPS
            n = memory_access_size(ops, n, xlat)
            big = device_big_endian(ops, native_big)
            if direct:
                out: Any = (0, MEMTX_DECODE_ERROR)  # beyond the backing store (mid-resize)
            else:
                out = memory_region_dispatch_read(mr, xlat, n, attrs, native_big)
            if type(out) is tuple:
                value, r = out
                buf[pos : pos + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(
                    n, "big" if big else "little"
                )
                result |= r
            else:
                if pending is None:
                    pending = PendingRead(buf, 0)
                pending.pieces.append((pos, n, big, out))
        length -= n
        if length == 0:
            if pending is not None:
                pending.result = result
                return pending
            return bytes(buf), result
        pos += n
        addr = (addr + n) & MASK64
        mr, xlat, n = _translate(fv, addr, length)


def write_loop(
    fv: FlatView, addr: int, data: bytes, attrs: MemTxAttrs, native_big: bool
) -> int | PendingWrite:
    """QEMU's ``flatview_write``: store ``data`` at ``addr``; returns the result bits, or a
    ``PendingWrite`` when device pieces must be awaited. Every piece is issued first."""
    length = len(data)
    pos = 0
    result = 0
    pending = None
    mr, xlat, n = _translate(fv, addr, length)
    if attrs.memory and not mr.ram:
        return MEMTX_ACCESS_ERROR
    while True:
        backing = mr.backing  # never None for RAM
        if attrs.memory and not mr.ram:
            result |= MEMTX_ACCESS_ERROR
        elif mr.ram and not mr.readonly and backing is not None and xlat < len(backing):
            if n > len(backing) - xlat:
                n = len(backing) - xlat
            backing[xlat : xlat + n] = data[pos : pos + n]
        else:
            ops = mr.ops
            n = memory_access_size(ops, n, xlat)
            big = device_big_endian(ops, native_big)
            value = int.from_bytes(data[pos : pos + n], "big" if big else "little")
            out = memory_region_dispatch_write(mr, xlat, n, value, attrs, native_big)
            if isinstance(out, int):
                result |= out
            else:
                if pending is None:
                    pending = PendingWrite(0)
                pending.pieces.append(out)
        length -= n
        if length == 0:
            if pending is not None:
                pending.result = result
                return pending
            return result
        pos += n
        addr = (addr + n) & MASK64
        mr, xlat, n = _translate(fv, addr, length)
