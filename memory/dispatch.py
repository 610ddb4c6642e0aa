"""One MMIO piece to one region's ops: QEMU's ``memory_region_dispatch_read/write``.

The access loop (``access_loop``) cuts an access into pieces; each piece that is not a direct
RAM copy comes here. A piece is checked against the device's ``valid`` constraints
(``memory_region_access_valid``), refused if its device is already inside one of its own
callbacks (the re-entrancy guard), then split into or widened to the sizes the device implements
(``access_with_adjusted_size``), the value laid out in the device's byte order. The rules are
VALID, IMPL, ENDIAN, RESULT and GUARD in ``docs/memory-rules.md``.

Ops may answer with an awaitable (remote devices do). Every sub-access of a piece is issued
first, so a remote device receives them together and in order; the awaitables are collected in
a ``DevicePiece`` that the loop settles later. A callback that raises or answers nonsense fails
its sub-access with ``MEMTX_ERROR`` and is logged; it never raises into the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Literal

import structlog

from .access import MASK64, Endianness, MemoryRegionOps, MemTxAttrs
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
    """``id()`` of the owners whose callbacks are in progress in the caller's causal chain
    (empty outside any callback). The set belongs to the current context; callers must not
    assume it stays valid after the callback that is running returns."""
    return _ENGAGED.get()


def set_engaged_owners(owners: frozenset[int]) -> contextvars.Token[frozenset[int]]:
    """Declare the causal chain (owner ``id()`` values) of the accesses about to be made in the
    current context, e.g. a remote device's DMA on behalf of one of its MMIO callbacks: those
    owners' guarded regions then answer ``MEMTX_ACCESS_ERROR`` (GUARD-2). The chain replaces,
    not extends, the current one; undo with ``reset_engaged_owners(token)`` in the same
    context."""
    return _ENGAGED.set(owners)


def reset_engaged_owners(token: contextvars.Token[frozenset[int]]) -> None:
    """Restore the chain that ``set_engaged_owners`` replaced. ``token`` must come from that
    call, in the same context, and be used once (``ValueError``/``RuntimeError`` otherwise)."""
    _ENGAGED.reset(token)


def access_valid(
    ops: MemoryRegionOps, offset: int, size: int, is_write: bool, attrs: MemTxAttrs
) -> bool:
    """QEMU's ``memory_region_access_valid`` (VALID-1): ``accepts()`` first, then alignment
    (unless ``valid.unaligned``), then the size bounds (``valid.max_access_size == 0`` accepts
    every size and ignores the minimum). ``size`` must be a power of two (1..8) for the
    alignment test to mean anything; the loops only pass such sizes. Exceptions from
    ``accepts()`` propagate (``memory_region_dispatch_*`` turn them into ``MEMTX_ERROR``)."""
    if ops.accepts is not None and not ops.accepts(offset, size, is_write, attrs):
        return False
    valid = ops.valid
    if not valid.unaligned and offset & (size - 1):
        return False
    if not valid.max_access_size:
        return True
    return valid.min_access_size <= size <= valid.max_access_size


def device_big_endian(ops: MemoryRegionOps, native_big: bool) -> bool:
    """Whether the device's registers are big-endian: ``BIG``, or ``NATIVE`` on a machine whose
    own order is big-endian (``native_big``). The host's order never matters (ENDIAN-1)."""
    e = ops.endianness
    return e is Endianness.BIG or (e is Endianness.NATIVE and native_big)


def _engage(mr: MemoryRegion) -> frozenset[int] | Literal[False] | None:
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


class DevicePiece:
    """One MMIO piece whose sub-accesses answered with awaitables, as
    ``memory_region_dispatch_read/write`` return it: what was already composed, and
    (awaitable, shift, mask) per sub-access still to await, in issue order. Whoever receives
    it must call ``settle_read``/``settle_write`` once (matching the direction) or
    ``abandon``."""

    __slots__ = ("engaged", "mr", "result", "value", "waits")

    def __init__(self, mr: MemoryRegion, engaged: frozenset[int] | None) -> None:
        self.mr = mr
        self.engaged = engaged
        self.value = 0
        self.result = 0
        self.waits: list[tuple[Any, int, int]] = []

    async def settle_read(self) -> tuple[int, int]:
        """Await the sub-accesses in issue order, each in the causal chain of the piece
        (GUARD-2), and answer ``(value, result bits)`` as ``memory_region_dispatch_read``."""
        engaged, mr = self.engaged, self.mr
        return self.read_answered([await _await_op(aw, engaged, mr) for aw, _s, _m in self.waits])

    def read_answered(self, answers: list[Any]) -> tuple[int, int]:
        """``settle_read``'s answer from what the sub-accesses answered, in issue order."""
        value, result = self.value, self.result
        for (_aw, shift, mask), answer in zip(self.waits, answers, strict=True):
            t, res = _read_value(answer, self.mr)
            result |= res
            value |= (t & mask) << shift if shift >= 0 else (t & mask) >> -shift
        return value, result

    def future_answer(self, future: asyncio.Future[Any]) -> Any:
        """What a done future a sub-access answered with counts as (as awaiting it would):
        its result, or a failure (logged) if it raised or was cancelled."""
        if not future.cancelled():
            error = future.exception()
            if error is None:
                return future.result()
            log.error("mmio op failed", region=self.mr.name, exc_info=error)
        return _FAILED

    async def settle_write(self) -> int:
        """Await the sub-accesses in issue order and answer the OR of their result bits."""
        result = self.result
        for aw, _shift, _mask in self.waits:
            result |= _write_result(await _await_op(aw, self.engaged, self.mr), self.mr)
        return result

    def abandon(self) -> None:
        """Give up on the awaitables without awaiting them (coroutines are closed)."""
        for aw, _shift, _mask in self.waits:
            close = getattr(aw, "close", None)
            if close is not None:
                close()  # so that no "coroutine was never awaited" warning is left behind


def _impl_size(ops: MemoryRegionOps, size: int) -> int:
    """The size of each sub-access a ``size``-byte piece becomes for ``ops`` (IMPL-1): ``size``
    brought into [``impl.min_access_size`` or 1, ``impl.max_access_size`` or 4]. Smaller than
    ``size`` means the piece is split, larger that it is widened."""
    impl = ops.impl
    asz = impl.max_access_size or 4
    if size < asz:
        asz = size
    amin = impl.min_access_size or 1
    return amin if asz < amin else asz


def memory_region_dispatch_read(
    mr: MemoryRegion, offset: int, size: int, attrs: MemTxAttrs, native_big: bool
) -> tuple[int, int] | DevicePiece:
    """One MMIO read of a ``size``-byte piece at ``offset`` in ``mr`` (QEMU's
    ``memory_region_dispatch_read`` with ``access_with_adjusted_size``).

    ``size`` is what ``memory_access_size`` chose (a power of two, 1..8) and ``offset`` is
    0..2**64-1; the piece may run past the region's end (ACCESS-3). Answers ``(value, result
    bits)``, the value assembled in the device's byte order (``native_big`` resolves
    ``NATIVE``) and possibly wider than ``size`` bytes, which the caller truncates (IMPL-3);
    or a ``DevicePiece`` when the device answered with awaitables, which the caller owns and
    must settle or abandon. A refused piece reads 0 with ``MEMTX_DECODE_ERROR`` (VALID-2), a
    re-entrant one 0 with ``MEMTX_ACCESS_ERROR`` (GUARD-2), and ops without ``read`` give 0 and
    ``MEMTX_OK``; no callback runs in those cases. Sub-access offsets wrap at 2**64, as QEMU's
    ``hwaddr`` does. Every sub-access is issued before anything is awaited, so a remote device
    receives them together and in order."""
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
    asz = _impl_size(ops, size)
    mask = (1 << (8 * asz)) - 1
    big = device_big_endian(ops, native_big)
    value = 0
    result = 0
    piece = None
    for i in range(0, size, asz):
        shift = (size - asz - i) * 8 if big else i * 8
        r = _call(read, ((offset + i) & MASK64, asz, attrs), engaged, mr)
        if type(r) is not int and _is_awaitable(r):
            if piece is None:
                piece = DevicePiece(mr, engaged)
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


def memory_region_dispatch_write(
    mr: MemoryRegion, offset: int, size: int, value: int, attrs: MemTxAttrs, native_big: bool
) -> int | DevicePiece:
    """One MMIO write of a ``size``-byte piece at ``offset`` in ``mr`` (QEMU's
    ``memory_region_dispatch_write`` with ``access_with_adjusted_size``).

    Arguments as for ``memory_region_dispatch_read``; ``value`` is the piece's bus bytes read
    as an integer in the device's order (0..2**(8*size)-1). Answers the result bits, or a
    ``DevicePiece`` the caller must settle or abandon. A refused piece is dropped with
    ``MEMTX_DECODE_ERROR``, a re-entrant one with ``MEMTX_ACCESS_ERROR``, and ops without
    ``write`` ignore it with ``MEMTX_OK``. A widened write carries the value in its lane with
    zeros elsewhere, never a read-modify-write (IMPL-3)."""
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
    asz = _impl_size(ops, size)
    mask = (1 << (8 * asz)) - 1
    big = device_big_endian(ops, native_big)
    result = 0
    piece = None
    for i in range(0, size, asz):
        shift = (size - asz - i) * 8 if big else i * 8
        t = (value >> shift) & mask if shift >= 0 else (value << -shift) & mask
        r = _call(write, ((offset + i) & MASK64, asz, t, attrs), engaged, mr)
        if r is not None and _is_awaitable(r):
            if piece is None:
                piece = DevicePiece(mr, engaged)
            piece.waits.append((r, 0, 0))
            continue
        result |= _write_result(r, mr)
    if piece is not None:
        piece.result = result
        return piece
    return result
