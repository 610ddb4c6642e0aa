"""Access dispatch: QEMU's ``address_space_rw`` loop and ``memory_region_dispatch_read/write``.

An access is split across flat ranges. RAM (and ROM reads, and ROM-device reads in ROMD mode)
are copied directly. Everything else goes through the region's ops, one piece at a time: each
piece is at most the ops' ``valid.max_access_size`` (4 if unset) and naturally aligned unless the
device implements unaligned accesses (``memory_access_size``), is checked against ``valid``
(``memory_region_access_valid``), then widened or split for ``impl``
(``access_with_adjusted_size``), with the value laid out in the device's byte order.
``MemTxResult`` bits of every piece are OR-combined and the loop never stops early.

Ops may answer with an awaitable (remote devices do). Every piece of an access is issued
first — so a remote device receives them together, in order — and only then are the awaitables
collected: the loops return their result directly when nothing needs awaiting (always the case
for RAM, ROM and synchronous ops, which therefore never touch the event loop), and otherwise a
``PendingRead``/``PendingWrite`` whose ``settle()`` coroutine awaits the pieces in issue order.
"""

from __future__ import annotations

import contextvars
from typing import Any

import structlog

from .access import (
    MASK64,
    TWO64,
    UNASSIGNED_MEM_OPS,
    Endianness,
    MemoryRegionOps,
    MemTxAttrs,
)
from .flatview import FlatView
from .region import MemoryRegion, RegionKind

log = structlog.get_logger("mmiobus.dispatch")

# Plain ints on the hot path: OR-ing IntFlag members costs a microsecond each.
MEMTX_OK = 0
MEMTX_ERROR = 1
MEMTX_DECODE_ERROR = 2
MEMTX_ACCESS_ERROR = 4

# Owners (devices, by id()) whose MMIO callbacks are running in the current causal chain. An
# access into a region whose owner is already here is a re-entrant cycle (A -> A, A -> B -> A):
# QEMU's re-entrancy guard answers it with MEMTX_ACCESS_ERROR instead of calling the device.
_ENGAGED: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "mmiobus_engaged_owners", default=frozenset()
)


def engaged_owners() -> frozenset[int]:
    """``id()`` of the owners whose callbacks are in progress in the caller's causal chain."""
    return _ENGAGED.get()


def set_engaged_owners(owners: frozenset[int]) -> contextvars.Token[frozenset[int]]:
    """Declare the causal chain (owner ``id()`` values) of the accesses about to be made, e.g. a
    remote device's DMA on behalf of one of its MMIO callbacks; undo with
    ``reset_engaged_owners(token)``."""
    return _ENGAGED.set(owners)


def reset_engaged_owners(token: contextvars.Token[frozenset[int]]) -> None:
    _ENGAGED.reset(token)


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
    return 1 << (n.bit_length() - 1)


def memory_access_size(ops: MemoryRegionOps, length: int, offset: int) -> int:
    """Largest piece (a power of two) the loop may hand to the region at ``offset``."""
    max_size = ops.valid.max_access_size or 4
    if not ops.impl.unaligned:
        align = offset & -offset
        if align and align < max_size:
            max_size = align
    if length > max_size:
        length = max_size
    return pow2floor(length)


def access_valid(
    ops: MemoryRegionOps, offset: int, size: int, is_write: bool, attrs: MemTxAttrs
) -> bool:
    """QEMU's ``memory_region_access_valid``: accepts(), alignment, then the size bounds
    (``valid.max_access_size == 0`` accepts every size and ignores the minimum)."""
    if ops.accepts is not None and not ops.accepts(offset, size, is_write, attrs):
        return False
    valid = ops.valid
    if not valid.unaligned and offset & (size - 1):
        return False
    if not valid.max_access_size:
        return True
    return valid.min_access_size <= size <= valid.max_access_size


def device_big_endian(ops: MemoryRegionOps, native_big: bool) -> bool:
    e = ops.endianness
    return e is Endianness.BIG or (e is Endianness.NATIVE and native_big)


def _engage(mr: MemoryRegion) -> frozenset[int] | bool | None:
    """The re-entrancy guard (QEMU's ``mem_reentrancy_guard``), applied to device-owned I/O
    regions only (not RAM, ROM or ROM devices). Returns the causal chain to run the device's
    callbacks in, ``None`` when the region is not guarded, or ``False`` when its owner is
    already in the chain (a re-entrant access)."""
    owner = mr.ops.owner
    if owner is None or mr.kind is not RegionKind.MMIO or mr.readonly:
        return None
    chain = _ENGAGED.get()
    if id(owner) in chain:
        return False
    return chain | {id(owner)}


_FAILED = object()  # what a callback that raised (or answered nonsense) counts as


def _is_awaitable(value: Any) -> bool:
    return hasattr(value, "__await__")


async def _await_op(aw: Any, engaged: frozenset[int] | None, mr: MemoryRegion) -> Any:
    # The coroutine runs here, in the awaiting task's context: declare the causal chain around it.
    token = _ENGAGED.set(engaged) if engaged is not None else None
    try:
        return await aw
    except Exception:
        log.exception("mmio op failed", region=mr.name)
        return _FAILED
    finally:
        if token is not None:
            _ENGAGED.reset(token)


def _call(fn: Any, args: tuple[Any, ...], engaged: frozenset[int] | None, mr: MemoryRegion) -> Any:
    token = _ENGAGED.set(engaged) if engaged is not None else None
    try:
        return fn(*args)
    except Exception:
        log.exception("mmio op failed", region=mr.name)
        return _FAILED
    finally:
        if token is not None:
            _ENGAGED.reset(token)


def _accepts(
    ops: MemoryRegionOps,
    offset: int,
    size: int,
    is_write: bool,
    attrs: MemTxAttrs,
    mr: MemoryRegion,
) -> int:
    """0 if the piece may go to the device, else the result bits to fail it with."""
    try:
        return 0 if access_valid(ops, offset, size, is_write, attrs) else MEMTX_DECODE_ERROR
    except Exception:
        log.exception("mmio accepts() failed", region=mr.name)
        return MEMTX_ERROR


def _read_value(r: Any, mr: MemoryRegion) -> tuple[int, int]:
    """A read callback's answer as (value, result bits): an int, or (int, MemTxResult)."""
    if type(r) is int:
        return r, MEMTX_OK
    if r is not _FAILED:
        if type(r) is tuple and len(r) == 2:
            value, res = r
            if isinstance(value, int) and isinstance(res, int) and not isinstance(value, bool):
                return value, int(res) & 7
        elif isinstance(r, int) and not isinstance(r, bool):
            return int(r), MEMTX_OK
        log.error(
            "mmio read answered something that is not a value", region=mr.name, answer=repr(r)[:80]
        )
    return 0, MEMTX_ERROR


def _write_result(r: Any, mr: MemoryRegion) -> int:
    """A write callback's answer as result bits: None (OK) or a MemTxResult."""
    if r is None:
        return MEMTX_OK
    if r is not _FAILED:
        if isinstance(r, int) and not isinstance(r, bool):
            return int(r) & 7
        log.error(
            "mmio write answered something that is not a result",
            region=mr.name,
            answer=repr(r)[:80],
        )
    return MEMTX_ERROR


class _DevicePiece:
    """One device access whose sub-accesses answered with awaitables: what was already
    composed, and (awaitable, shift, mask) per sub-access still to await, in issue order."""

    __slots__ = ("engaged", "mr", "result", "value", "waits")

    def __init__(self, mr: MemoryRegion, engaged: frozenset[int] | None) -> None:
        self.mr = mr
        self.engaged = engaged
        self.value = 0
        self.result = 0
        self.waits: list[tuple[Any, int, int]] = []

    async def settle_read(self) -> tuple[int, int]:
        value, result = self.value, self.result
        for aw, shift, mask in self.waits:
            t, res = _read_value(await _await_op(aw, self.engaged, self.mr), self.mr)
            result |= res
            value |= (t & mask) << shift if shift >= 0 else (t & mask) >> -shift
        return value, result

    async def settle_write(self) -> int:
        result = self.result
        for aw, _shift, _mask in self.waits:
            result |= _write_result(await _await_op(aw, self.engaged, self.mr), self.mr)
        return result

    def abandon(self) -> None:
        for aw, _shift, _mask in self.waits:
            close = getattr(aw, "close", None)
            if close is not None:
                close()  # so that no "coroutine was never awaited" warning is left behind


def dispatch_read(
    mr: MemoryRegion, offset: int, size: int, attrs: MemTxAttrs, native_big: bool
) -> tuple[int, int] | _DevicePiece:
    """One MMIO read of ``size`` bytes at ``offset`` in ``mr``: ``(value, result)``, or a
    ``_DevicePiece`` when the device answered with awaitables. Every sub-access is issued
    before anything is awaited, so a remote device receives them together and in order."""
    ops = mr.ops
    refused = _accepts(ops, offset, size, False, attrs, mr)
    if refused:
        return 0, refused
    engaged = _engage(mr)
    if engaged is False:
        return 0, MEMTX_ACCESS_ERROR
    read = ops.read
    if read is None:
        return 0, MEMTX_OK
    impl = ops.impl
    asz = min(size, impl.max_access_size or 4)
    amin = impl.min_access_size or 1
    if asz < amin:
        asz = amin
    mask = (1 << (8 * asz)) - 1
    big = device_big_endian(ops, native_big)
    value = 0
    result = 0
    piece = None
    for i in range(0, size, asz):
        shift = (size - asz - i) * 8 if big else i * 8
        r = _call(read, (offset + i, asz, attrs), engaged, mr)
        if type(r) is not int and _is_awaitable(r):
            if piece is None:
                piece = _DevicePiece(mr, engaged)
            piece.waits.append((r, shift, mask))
            continue
        t, res = _read_value(r, mr)
        result |= res
        if shift >= 0:
            value |= (t & mask) << shift
        else:
            value |= (t & mask) >> -shift
    if piece is not None:
        piece.value, piece.result = value, result
        return piece
    return value, result


def dispatch_write(
    mr: MemoryRegion, offset: int, size: int, value: int, attrs: MemTxAttrs, native_big: bool
) -> int | _DevicePiece:
    """One MMIO write of ``size`` bytes at ``offset`` in ``mr``: the result bits, or a
    ``_DevicePiece`` when the device answered with awaitables."""
    ops = mr.ops
    refused = _accepts(ops, offset, size, True, attrs, mr)
    if refused:
        return refused
    engaged = _engage(mr)
    if engaged is False:
        return MEMTX_ACCESS_ERROR
    write = ops.write
    if write is None:
        return MEMTX_OK
    impl = ops.impl
    asz = min(size, impl.max_access_size or 4)
    amin = impl.min_access_size or 1
    if asz < amin:
        asz = amin
    mask = (1 << (8 * asz)) - 1
    big = device_big_endian(ops, native_big)
    result = 0
    piece = None
    for i in range(0, size, asz):
        shift = (size - asz - i) * 8 if big else i * 8
        t = (value >> shift) & mask if shift >= 0 else (value << -shift) & mask
        r = _call(write, (offset + i, asz, t, attrs), engaged, mr)
        if r is not None and _is_awaitable(r):
            if piece is None:
                piece = _DevicePiece(mr, engaged)
            piece.waits.append((r, 0, 0))
            continue
        result |= _write_result(r, mr)
    if piece is not None:
        piece.result = result
        return piece
    return result


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
        self.pieces: list[tuple[int, int, bool, _DevicePiece]] = []

    async def settle(self) -> tuple[bytes, int]:
        buf, result = self.buf, self.result
        for pos, n, big, piece in self.pieces:
            value, r = await piece.settle_read()
            buf[pos : pos + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(
                n, "big" if big else "little"
            )
            result |= r
        return bytes(buf), result

    def abandon(self) -> None:
        for *_rest, piece in self.pieces:
            piece.abandon()


class PendingWrite:
    """A write whose device pieces still need awaiting (``await pending.settle()``)."""

    __slots__ = ("pieces", "result")

    def __init__(self, result: int) -> None:
        self.result = result
        self.pieces: list[_DevicePiece] = []

    async def settle(self) -> int:
        result = self.result
        for piece in self.pieces:
            result |= await piece.settle_write()
        return result

    def abandon(self) -> None:
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
        if attrs.memory and not mr.ram:
            result |= MEMTX_ACCESS_ERROR
        elif direct and xlat < len(mr.backing):  # type: ignore[arg-type]
            backing = mr.backing
            if n > len(backing) - xlat:  # type: ignore[arg-type]
                n = len(backing) - xlat  # type: ignore[arg-type]
            buf[pos : pos + n] = backing[xlat : xlat + n]  # type: ignore[index]
        else:
            ops = mr.ops if not direct else UNASSIGNED_MEM_OPS
            n = memory_access_size(ops, n, xlat)
            big = device_big_endian(ops, native_big)
            if direct:
                out: Any = (0, MEMTX_DECODE_ERROR)  # beyond the backing store (mid-resize)
            else:
                out = dispatch_read(mr, xlat, n, attrs, native_big)
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
        if attrs.memory and not mr.ram:
            result |= MEMTX_ACCESS_ERROR
        elif mr.ram and not mr.readonly and xlat < len(mr.backing):  # type: ignore[arg-type]
            backing = mr.backing
            if n > len(backing) - xlat:  # type: ignore[arg-type]
                n = len(backing) - xlat  # type: ignore[arg-type]
            backing[xlat : xlat + n] = data[pos : pos + n]  # type: ignore[index]
        else:
            ops = mr.ops
            n = memory_access_size(ops, n, xlat)
            big = device_big_endian(ops, native_big)
            value = int.from_bytes(data[pos : pos + n], "big" if big else "little")
            out = dispatch_write(mr, xlat, n, value, attrs, native_big)
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
