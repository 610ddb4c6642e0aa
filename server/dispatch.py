"""Access dispatch: QEMU's ``address_space_rw`` loop and ``memory_region_dispatch_read/write``.

An access is split across flat ranges. RAM (and ROM reads, and ROM-device reads in ROMD mode)
are copied directly. Everything else goes through the region's ops, one piece at a time: each
piece is at most the ops' ``valid.max_access_size`` (4 if unset) and naturally aligned unless the
device implements unaligned accesses (``memory_access_size``), is checked against ``valid``
(``memory_region_access_valid``), then widened or split for ``impl``
(``access_with_adjusted_size``), with the value laid out in the device's byte order.
``MemTxResult`` bits of every piece are OR-combined and the loop never stops early.

Ops may answer with a coroutine (remote devices do). The loops below are generators that
yield such awaitables; ``run_sync`` drives one without ever touching the event loop and hands
back a coroutine only when an op really needs awaiting, so RAM and ROM accesses complete
without awaiting anything.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Generator
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

# Owners (devices) whose MMIO callbacks are running in the current causal chain. An access into
# a region whose owner is already here is a re-entrant cycle (A -> A, or A -> B -> A): QEMU's
# re-entrancy guard answers it with MEMTX_ACCESS_ERROR instead of calling the device again.
_ENGAGED: contextvars.ContextVar[frozenset[Any]] = contextvars.ContextVar(
    "mmiobus_engaged_owners", default=frozenset()
)

DispatchGen = Generator[Awaitable[Any], Any, Any]


def engaged_owners() -> frozenset[Any]:
    """Owners whose callbacks are in progress in the caller's causal chain."""
    return _ENGAGED.get()


def set_engaged_owners(owners: frozenset[Any]) -> contextvars.Token[frozenset[Any]]:
    """Declare the causal chain of the accesses about to be made (e.g. a remote device's DMA
    on behalf of one of its MMIO callbacks); undo with ``reset_engaged_owners(token)``."""
    return _ENGAGED.set(owners)


def reset_engaged_owners(token: contextvars.Token[frozenset[Any]]) -> None:
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


def _guarded(mr: MemoryRegion) -> bool:
    # QEMU applies the guard to device-owned I/O regions only (not RAM, ROM, ROM devices).
    return mr.ops.owner is not None and mr.kind is RegionKind.MMIO and not mr.readonly


async def _await_op(aw: Awaitable[Any], engaged: frozenset[Any] | None, mr: MemoryRegion) -> Any:
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


_FAILED = object()


def _call(fn: Any, args: tuple[Any, ...], engaged: frozenset[Any] | None, mr: MemoryRegion) -> Any:
    if engaged is None:
        try:
            return fn(*args)
        except Exception:
            log.exception("mmio op failed", region=mr.name)
            return _FAILED
    token = _ENGAGED.set(engaged)
    try:
        return fn(*args)
    except Exception:
        log.exception("mmio op failed", region=mr.name)
        return _FAILED
    finally:
        _ENGAGED.reset(token)


def dispatch_read(
    mr: MemoryRegion, offset: int, size: int, attrs: MemTxAttrs, native_big: bool
) -> DispatchGen:
    """One MMIO read of ``size`` bytes at ``offset`` in ``mr``; returns ``(value, result)``."""
    ops = mr.ops
    if not access_valid(ops, offset, size, False, attrs):
        return 0, MEMTX_DECODE_ERROR
    engaged = None
    if _guarded(mr):
        chain = _ENGAGED.get()
        if ops.owner in chain:
            return 0, MEMTX_ACCESS_ERROR
        engaged = chain | {ops.owner}
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
    for i in range(0, size, asz):
        r = _call(read, (offset + i, asz, attrs), engaged, mr)
        if type(r) is not int and type(r) is not tuple and r is not _FAILED:
            r = yield _await_op(r, engaged, mr)
        if type(r) is int:
            t = r
        elif type(r) is tuple and len(r) == 2:
            t, res = r
            result |= int(res)
        else:
            if r is not _FAILED:
                log.error("mmio read returned a non-integer", region=mr.name, value=repr(r))
            t = 0
            result |= MEMTX_ERROR
        if type(t) is not int:
            log.error("mmio read returned a non-integer", region=mr.name, value=repr(t))
            t, result = 0, result | MEMTX_ERROR
        shift = (size - asz - i) * 8 if big else i * 8
        if shift >= 0:
            value |= (t & mask) << shift
        else:
            value |= (t & mask) >> -shift
    return value, result


def dispatch_write(
    mr: MemoryRegion, offset: int, size: int, value: int, attrs: MemTxAttrs, native_big: bool
) -> DispatchGen:
    """One MMIO write of ``size`` bytes at ``offset`` in ``mr``; returns the result bits."""
    ops = mr.ops
    if not access_valid(ops, offset, size, True, attrs):
        return MEMTX_DECODE_ERROR
    engaged = None
    if _guarded(mr):
        chain = _ENGAGED.get()
        if ops.owner in chain:
            return MEMTX_ACCESS_ERROR
        engaged = chain | {ops.owner}
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
    for i in range(0, size, asz):
        shift = (size - asz - i) * 8 if big else i * 8
        t = (value >> shift) & mask if shift >= 0 else (value << -shift) & mask
        r = _call(write, (offset + i, asz, t, attrs), engaged, mr)
        if r is not None and type(r) is not int and r is not _FAILED:
            r = yield _await_op(r, engaged, mr)
        if r is _FAILED:
            result |= MEMTX_ERROR
        elif r is not None:
            try:
                result |= int(r)
            except (TypeError, ValueError):
                log.error("mmio write returned a non-result", region=mr.name, value=repr(r))
                result |= MEMTX_ERROR
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


def read_loop(
    fv: FlatView, addr: int, length: int, attrs: MemTxAttrs, native_big: bool
) -> DispatchGen:
    """QEMU's ``flatview_read``: fill ``length`` bytes from ``addr``; returns (bytes, bits)."""
    buf = bytearray(length)
    pos = 0
    result = 0
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
            if direct:
                value, r = 0, MEMTX_DECODE_ERROR  # beyond the backing store (mid-resize)
            else:
                value, r = yield from dispatch_read(mr, xlat, n, attrs, native_big)
            big = device_big_endian(ops, native_big)
            buf[pos : pos + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(
                n, "big" if big else "little"
            )
            result |= r
        length -= n
        if length == 0:
            return bytes(buf), result
        pos += n
        addr = (addr + n) & MASK64
        mr, xlat, n = _translate(fv, addr, length)


def write_loop(
    fv: FlatView, addr: int, data: bytes, attrs: MemTxAttrs, native_big: bool
) -> DispatchGen:
    """QEMU's ``flatview_write``: store ``data`` at ``addr``; returns the result bits."""
    length = len(data)
    pos = 0
    result = 0
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
            result |= yield from dispatch_write(mr, xlat, n, value, attrs, native_big)
        length -= n
        if length == 0:
            return result
        pos += n
        addr = (addr + n) & MASK64
        mr, xlat, n = _translate(fv, addr, length)


def run_sync(gen: DispatchGen) -> Any:
    """Run a dispatch generator until it finishes or needs to await an op.

    Returns the generator's result, or a coroutine that finishes the access when awaited.
    """
    try:
        aw = gen.send(None)
    except StopIteration as stop:
        return stop.value
    return _finish(gen, aw)


async def _finish(gen: DispatchGen, aw: Awaitable[Any]) -> Any:
    while True:
        value = await aw
        try:
            aw = gen.send(value)
        except StopIteration as stop:
            return stop.value
