"""The access loop: QEMU's ``address_space_rw`` (``flatview_read/write_continue``).

One access is carried across a flat view piece by piece. RAM (and ROM reads, and ROM-device
reads in ROMD mode) is copied directly, clamped at the end of its flat range. Everything else
goes to the region's ops one piece at a time: each piece is at most the ops'
``valid.max_access_size`` (4 if unset) and naturally aligned unless the device implements
unaligned accesses (``memory_access_size``), and ``dispatch.memory_region_dispatch_read/write``
take it from there. ``MemTxResult`` bits of every piece are OR-combined, the loop never stops
early, and the address wraps at 2**64. The rules are ACCESS, PIECE, HOLE and ROM in
``docs/memory-rules.md``.

The pieces of an access are issued first — so a remote device receives them together, in
order — and only then are awaitables collected: the loops return their result directly when
nothing needs awaiting (always the case for RAM, ROM and synchronous ops, which therefore never
touch the event loop), and otherwise a ``PendingRead``/``PendingWrite`` whose ``settle()``
coroutine awaits the pieces in issue order. An access that would hand more than
``MAX_PIECES`` pieces to ops issues them in rounds instead (PIECE-4), so that one access can
neither hold the event loop nor flood a device; runs of pieces that every op would refuse alike
(holes) are answered together (HOLE-1).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from typing import Any

from .access import MASK64, TWO64, UNASSIGNED_MEM_OPS, MemoryRegionOps, MemTxAttrs
from .dispatch import (
    MEMTX_ACCESS_ERROR,
    MEMTX_DECODE_ERROR,
    DevicePiece,
    device_big_endian,
    engaged_owners,
    memory_region_dispatch_read,
    memory_region_dispatch_write,
    reset_engaged_owners,
    set_engaged_owners,
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


def lane(value: int, n: int, big: bool) -> bytes:
    """The ``n`` bytes a piece's value puts on the bus, in the device's byte order (a value
    wider than the piece is truncated, IMPL-3)."""
    return (value & ((1 << (8 * n)) - 1)).to_bytes(n, "big" if big else "little")


MAX_PIECES = 1024
"""How many pieces one access hands to ops before it lets others run (PIECE-4): an access that
needs more is carried on in rounds of this many, each issued once the previous round has been
answered (or, when the ops answered at once, after one turn of the event loop). A 1 MiB read
of a byte-wide device would otherwise issue a million forwarded accesses at once."""


class PendingRead:
    """A read whose device pieces still need awaiting (``await pending.settle()``), and which
    may have more rounds of pieces to issue (PIECE-4)."""

    __slots__ = ("buf", "pieces", "result", "resume")

    def __init__(self, buf: bytearray, result: int) -> None:
        self.buf = buf
        self.result = result
        self.pieces: list[tuple[int, int, bool, DevicePiece]] = []
        # Where the next round starts: (view, addr, pos, length, attrs, native_big, chain,
        # max_pieces), or None when every piece has been issued.
        self.resume: tuple[Any, ...] | None = None

    async def settle(self) -> tuple[bytes, int]:
        """Await the device pieces in issue order, issuing the later rounds as the earlier ones
        are answered, and answer ``(bytes, result bits)``, the bytes always the access's full
        length. Call once; afterwards the pending read is spent."""
        buf, result = self.buf, self.result
        while True:
            pieces, self.pieces = self.pieces, []
            for pos, n, big, piece in pieces:
                value, r = await piece.settle_read()
                buf[pos : pos + n] = lane(value, n, big)
                result |= r
            resume, self.resume = self.resume, None
            if resume is None:
                return bytes(buf), result
            if not pieces:  # the last round was answered at once: let others run first
                await asyncio.sleep(0)
            fv, addr, pos, length, attrs, native_big, chain, max_pieces = resume
            token = set_engaged_owners(chain)
            try:
                result |= _read_run(fv, addr, pos, length, attrs, native_big, max_pieces, self)
            finally:
                reset_engaged_owners(token)

    def single_future(self) -> asyncio.Future[Any] | None:
        """The one future the whole read waits for (a register of a remote device, say), or
        None when it waits for more, or for coroutines, or has later rounds."""
        if self.resume is None and len(self.pieces) == 1:
            waits = self.pieces[0][3].waits
            if len(waits) == 1 and isinstance(waits[0][0], asyncio.Future):
                return waits[0][0]
        return None

    def answered(self, future: asyncio.Future[Any]) -> tuple[bytes, int]:
        """``settle``'s answer for a read whose ``single_future`` is done."""
        pos, n, big, piece = self.pieces[0]
        value, r = piece.read_answered([piece.future_answer(future)])
        self.buf[pos : pos + n] = lane(value, n, big)
        return bytes(self.buf), self.result | r

    def abandon(self) -> None:
        """Drop the read without awaiting it: close the awaitables that are coroutines, so no
        "never awaited" warning is left behind. Device pieces already issued stay issued; later
        rounds are not."""
        for *_rest, piece in self.pieces:
            piece.abandon()
        self.resume = None


class PendingWrite:
    """A write whose device pieces still need awaiting (``await pending.settle()``), and which
    may have more rounds of pieces to issue (PIECE-4)."""

    __slots__ = ("pieces", "result", "resume")

    def __init__(self, result: int) -> None:
        self.result = result
        self.pieces: list[DevicePiece] = []
        # (view, addr, pos, data, attrs, native_big, chain, max_pieces) or None, as for reads.
        self.resume: tuple[Any, ...] | None = None

    async def settle(self) -> int:
        """Await the device pieces in issue order (issuing later rounds as for reads) and
        answer the OR of every piece's result bits. Call once."""
        result = self.result
        while True:
            pieces, self.pieces = self.pieces, []
            for piece in pieces:
                result |= await piece.settle_write()
            resume, self.resume = self.resume, None
            if resume is None:
                return result
            if not pieces:
                await asyncio.sleep(0)
            fv, addr, pos, data, attrs, native_big, chain, max_pieces = resume
            token = set_engaged_owners(chain)
            try:
                result |= _write_run(fv, addr, pos, data, attrs, native_big, max_pieces, self)
            finally:
                reset_engaged_owners(token)

    def abandon(self) -> None:
        """Drop the write without awaiting it (as ``PendingRead.abandon``)."""
        for piece in self.pieces:
            piece.abandon()
        self.resume = None


def _refused_run(fv: FlatView, addr: int, xlat: int, length: int) -> int:
    """How many bytes from ``addr`` go, in whole 4-byte pieces, to ops that refuse every
    access (a hole, HOLE-1, or a region without ops): they all answer the same
    (``MEMTX_DECODE_ERROR``, reading 0), so they are answered together instead of one call
    each. 0 unless the pieces from here are 4 bytes: ``xlat`` (the offset the pieces are
    aligned by) a multiple of 4 and at least 4 bytes to go. Pieces are not clamped where the
    next range begins (ACCESS-3): the last one counted starts before it."""
    if xlat & 3 or length < 4:
        return 0
    fr = fv.lookup(addr)
    if fr is not None:
        end = fr.end
    else:
        i = bisect_right(fv.starts, addr)
        end = fv.starts[i] if i < len(fv.starts) else TWO64
    pieces = min(length >> 2, (end - addr + 3) >> 2)
    return pieces << 2


def read_loop(
    fv: FlatView,
    addr: int,
    length: int,
    attrs: MemTxAttrs,
    native_big: bool,
    max_pieces: int | None = None,
) -> tuple[bytes, int] | PendingRead:
    """QEMU's ``flatview_read``: fill ``length`` bytes from ``addr``; returns (bytes, bits), or
    a ``PendingRead`` when device pieces must be awaited. With ``max_pieces``, at most that
    many pieces go to ops before the read returns a ``PendingRead`` that issues the rest in
    later rounds (PIECE-4); without it, every piece is issued first."""
    buf = bytearray(length)
    mr, _xlat, _n = _translate(fv, addr, length)
    if attrs.memory and not mr.ram:
        return bytes(buf), MEMTX_ACCESS_ERROR
    pending = PendingRead(buf, 0)
    result = _read_run(fv, addr, 0, length, attrs, native_big, max_pieces, pending)
    if pending.pieces or pending.resume is not None:
        pending.result = result
        return pending
    return bytes(buf), result


def read_piece(
    mr: MemoryRegion, offset: int, length: int, attrs: MemTxAttrs, native_big: bool
) -> tuple[bytes, int] | PendingRead | None:
    """``read_loop`` for a read that is one piece of ``mr``'s ops (a device register: not RAM,
    ROM or a ROM device in ROMD mode, at most ``valid.max_access_size`` and aligned as
    ``memory_access_size`` wants, ``offset`` its offset in ``mr``), without walking the view;
    None when the read is not such a piece."""
    ops = mr.ops
    if (
        mr.ram
        or (mr.rom_device and mr.romd_mode)
        or attrs.memory
        or ops is UNASSIGNED_MEM_OPS
        or memory_access_size(ops, length, offset) != length
    ):
        return None
    big = device_big_endian(ops, native_big)
    out = memory_region_dispatch_read(mr, offset, length, attrs, native_big)
    if isinstance(out, tuple):
        value, result = out
        return lane(value, length, big), result
    pending = PendingRead(bytearray(length), 0)
    pending.pieces.append((0, length, big, out))
    return pending


def _read_run(
    fv: FlatView,
    addr: int,
    pos: int,
    length: int,
    attrs: MemTxAttrs,
    native_big: bool,
    max_pieces: int | None,
    pending: PendingRead,
) -> int:
    """Carry a read on from ``addr`` (``pos`` bytes into ``pending.buf``, ``length`` to go):
    the result bits of the pieces answered at once; awaitable pieces go to ``pending.pieces``
    and, when ``max_pieces`` ran out first, where to go on to ``pending.resume``."""
    buf = pending.buf
    result = 0
    calls = 0
    mr, xlat, n = _translate(fv, addr, length)
    while True:
        direct = mr.ram or (mr.rom_device and mr.romd_mode)
        backing = mr.backing  # never None when direct
        if attrs.memory and not mr.ram:
            result |= MEMTX_ACCESS_ERROR
        elif direct and backing is not None and xlat < len(backing):
            if n > len(backing) - xlat:
                n = len(backing) - xlat
            buf[pos : pos + n] = backing[xlat : xlat + n]
        elif not direct and mr.ops is UNASSIGNED_MEM_OPS and (k := _refused_run(fv, addr, xlat, n)):
            n = k  # zeros are already in buf
            result |= MEMTX_DECODE_ERROR
        else:
            ops = mr.ops if not direct else UNASSIGNED_MEM_OPS
            n = memory_access_size(ops, n, xlat)
            big = device_big_endian(ops, native_big)
            if direct:
                out: Any = (0, MEMTX_DECODE_ERROR)  # beyond the backing store (mid-resize)
            else:
                out = memory_region_dispatch_read(mr, xlat, n, attrs, native_big)
                calls += 1
            if type(out) is tuple:
                value, r = out
                buf[pos : pos + n] = lane(value, n, big)
                result |= r
            else:
                pending.pieces.append((pos, n, big, out))
        length -= n
        if length == 0:
            return result
        pos += n
        addr = (addr + n) & MASK64
        if max_pieces is not None and calls >= max_pieces:
            pending.resume = (
                fv, addr, pos, length, attrs, native_big, engaged_owners(), max_pieces,
            )  # fmt: skip
            return result
        mr, xlat, n = _translate(fv, addr, length)


def write_loop(
    fv: FlatView,
    addr: int,
    data: bytes,
    attrs: MemTxAttrs,
    native_big: bool,
    max_pieces: int | None = None,
) -> int | PendingWrite:
    """QEMU's ``flatview_write``: store ``data`` at ``addr``; returns the result bits, or a
    ``PendingWrite`` when device pieces must be awaited. ``max_pieces`` as for ``read_loop``."""
    mr, _xlat, _n = _translate(fv, addr, len(data))
    if attrs.memory and not mr.ram:
        return MEMTX_ACCESS_ERROR
    pending = PendingWrite(0)
    result = _write_run(fv, addr, 0, data, attrs, native_big, max_pieces, pending)
    if pending.pieces or pending.resume is not None:
        pending.result = result
        return pending
    return result


def _write_run(
    fv: FlatView,
    addr: int,
    pos: int,
    data: bytes,
    attrs: MemTxAttrs,
    native_big: bool,
    max_pieces: int | None,
    pending: PendingWrite,
) -> int:
    """Carry a write on from ``addr``, ``pos`` bytes into ``data`` (as ``_read_run``)."""
    length = len(data) - pos
    result = 0
    calls = 0
    mr, xlat, n = _translate(fv, addr, length)
    while True:
        backing = mr.backing  # never None for RAM
        if attrs.memory and not mr.ram:
            result |= MEMTX_ACCESS_ERROR
        elif mr.ram and not mr.readonly and backing is not None and xlat < len(backing):
            if n > len(backing) - xlat:
                n = len(backing) - xlat
            backing[xlat : xlat + n] = data[pos : pos + n]
        elif mr.ops is UNASSIGNED_MEM_OPS and (k := _refused_run(fv, addr, xlat, n)):
            n = k  # a ROM write or a hole: nothing is stored
            result |= MEMTX_DECODE_ERROR
        else:
            ops = mr.ops
            n = memory_access_size(ops, n, xlat)
            big = device_big_endian(ops, native_big)
            value = int.from_bytes(data[pos : pos + n], "big" if big else "little")
            out = memory_region_dispatch_write(mr, xlat, n, value, attrs, native_big)
            calls += 1
            if isinstance(out, int):
                result |= out
            else:
                pending.pieces.append(out)
        length -= n
        if length == 0:
            return result
        pos += n
        addr = (addr + n) & MASK64
        if max_pieces is not None and calls >= max_pieces:
            pending.resume = (
                fv, addr, pos, data, attrs, native_big, engaged_owners(), max_pieces,
            )  # fmt: skip
            return result
        mr, xlat, n = _translate(fv, addr, length)
