"""Address spaces: a root region seen through its current flat view, and the access entry points.

Three flavours of each access:

* ``read`` / ``write`` — synchronous; for trees whose ops are plain functions. Reaching ops that
  answer with a coroutine raises ``AsyncOpsError``.
* ``read_async`` / ``write_async`` — coroutines; work with every kind of ops.
* ``dispatch_read`` / ``dispatch_write`` — the seam the server uses: they return the result
  directly when nothing needed awaiting (always the case for RAM and ROM) and a coroutine
  otherwise, so the common case costs no task, no future and no event-loop turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, NamedTuple

from .access import MASK64, MEMTXATTRS_UNSPECIFIED, MemTxAttrs, MemTxResult
from .access_loop import (
    MAX_PIECES,
    PendingRead,
    PendingWrite,
    read_loop,
    read_piece,
    write_loop,
)
from .errors import AsyncOpsError, InvalidArgumentError
from .flatview import EMPTY_VIEW, FlatView
from .listener import MemoryListener, MemoryRegionSection, notify

if TYPE_CHECKING:
    from .region import MemoryRegion
    from .system import MemorySystem

_RESULTS = tuple(MemTxResult(i) for i in range(8))
_new_result = tuple.__new__
_OK = MemTxResult.OK


class ReadResult(NamedTuple):
    """Bytes read (always ``length`` of them, zeros where nothing answered) and the result."""

    data: bytes
    result: MemTxResult


def _as_read_result(value: tuple[bytes, int]) -> ReadResult:
    return ReadResult(value[0], _RESULTS[value[1] & 7])


class FutureRead:
    """What ``dispatch_read`` returns for a read that waits for one future (one register of a
    remote device): awaited like the coroutine it returns otherwise, or completed by a
    callback (``then``) without a task or a coroutine."""

    __slots__ = ("future", "pending")

    def __init__(self, future: asyncio.Future[Any], pending: PendingRead) -> None:
        self.future = future
        self.pending = pending

    def __await__(self) -> Generator[Any, None, ReadResult]:
        try:
            yield from self.future.__await__()
        except Exception:  # answered() logs it and counts the read as failed
            pass
        return self.result()

    def result(self) -> ReadResult:
        """The read's result, once the device answered."""
        return _as_read_result(self.pending.answered(self.future))

    def then(self, callback: Callable[[FutureRead], None]) -> None:
        """Call ``callback`` with this read once the device answers (on the loop); its
        ``result()`` is the read's (worked out only if asked for: a task may have taken the
        read over and awaited it meanwhile)."""
        self.future.add_done_callback(lambda _f: callback(self))

    def close(self) -> None:
        """Nothing to close (as ``close`` on the coroutine ``dispatch_read`` may return)."""


def _check(addr: int, length: int) -> None:
    if type(addr) is not int or not 0 <= addr <= MASK64:
        raise InvalidArgumentError(f"address {addr!r} is not in 0..2**64-1")
    if type(length) is not int or length < 0:
        raise InvalidArgumentError(f"length {length!r} is not a non-negative integer")


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgumentError(f"data must be bytes, not {type(data).__name__}")


class AddressSpace:
    """A named view of a region tree (QEMU's ``AddressSpace``); create with
    ``MemorySystem.address_space``."""

    __slots__ = ("current_map", "listeners", "name", "root", "system")

    def __init__(self, system: MemorySystem, name: str, root: MemoryRegion) -> None:
        self.system = system
        self.name = name
        self.root = root
        self.current_map: FlatView = EMPTY_VIEW
        self.listeners: list[MemoryListener] = []

    def __repr__(self) -> str:
        return f"<AddressSpace {self.name!r} root={self.root.name!r}>"

    @property
    def flatview(self) -> FlatView:
        """The view accesses use now (the old one until an open transaction commits)."""
        return self.current_map

    # -- accesses -----------------------------------------------------------------------------

    def dispatch_read(
        self,
        addr: int,
        length: int,
        attrs: MemTxAttrs = MEMTXATTRS_UNSPECIFIED,
        _allow_async: bool = True,
    ) -> ReadResult | Coroutine[Any, Any, ReadResult] | FutureRead:
        """Read ``length`` bytes at ``addr``: a ``ReadResult``, or an awaitable resolving to one
        when MMIO ops had to be awaited (the caller must await or close it): a ``FutureRead``
        when the read waits for one future, else a coroutine.

        ``addr`` is 0..2**64-1 and ``length`` a non-negative ``int``, else
        ``InvalidArgumentError``; length 0 reads nothing and answers ``MEMTX_OK`` (ACCESS-1).
        An access that runs past 2**64-1 continues at address 0 (ACCESS-4). The data is
        always ``length`` bytes, zeros where nothing answered (ACCESS-6). Every piece goes to
        its device in the view current at the call (TXN-5): all of them before this returns,
        unless the access needs more than ``MAX_PIECES`` (PIECE-4); then the coroutine issues
        the rest in rounds, so it is returned even when every op answers at once.
        """
        fv = self.current_map
        if type(addr) is int and type(length) is int and addr >= 0 and length > 0:
            # Fast path: the whole access inside one range of RAM (or ROM, or a ROM device in
            # ROMD mode). Direct or not is decided from the region's live flags, as in QEMU.
            fr = fv.mru
            if not fr.start <= addr < fr.end:
                fr = fv.lookup(addr) or fr
            if fr.start <= addr and addr + length <= fr.end:
                mr = fr.mr
                if mr.ram or (mr.rom_device and mr.romd_mode and not attrs.memory):
                    off = fr.offset + addr - fr.start
                    # backing is never None here (ram or romd); a None test would tax the
                    # hottest path, and a short slice (mid-resize) falls through below.
                    data = mr.backing[off : off + length]  # type: ignore[index]
                    if len(data) == length:
                        return _new_result(ReadResult, (bytes(data), _OK))
                elif length <= 8:  # one register of a device, most likely
                    one = read_piece(mr, fr.offset + addr - fr.start, length, attrs,
                                     self.system.native_big)  # fmt: skip
                    if one is not None:
                        return self._read_answer(one, _allow_async)
        _check(addr, length)
        if length == 0:
            return ReadResult(b"", _OK)
        rounds = MAX_PIECES if _allow_async else None
        out = read_loop(fv, addr, length, attrs, self.system.native_big, rounds)
        return self._read_answer(out, _allow_async)

    def _read_answer(
        self, out: tuple[bytes, int] | PendingRead, allow_async: bool = True
    ) -> ReadResult | Coroutine[Any, Any, ReadResult] | FutureRead:
        if isinstance(out, PendingRead):
            if not allow_async:
                out.abandon()
                raise _NeedsAwait
            future = out.single_future()
            return _finish_read(out) if future is None else FutureRead(future, out)
        return _as_read_result(out)

    def dispatch_write(
        self,
        addr: int,
        data: bytes,
        attrs: MemTxAttrs = MEMTXATTRS_UNSPECIFIED,
        _allow_async: bool = True,
    ) -> MemTxResult | Coroutine[Any, Any, MemTxResult]:
        """Write ``data`` (``bytes``, ``bytearray`` or ``memoryview``) at ``addr``: the
        result, or a coroutine resolving to it (the caller must await or close it).

        Edges as for ``dispatch_read``: ``addr`` 0..2**64-1, empty data writes nothing and
        answers ``MEMTX_OK``, and the access wraps from 2**64-1 to 0, and pieces beyond
        ``MAX_PIECES`` are issued in rounds (PIECE-4). Other data types raise
        ``InvalidArgumentError``. The data is copied before this returns; the caller may
        reuse its buffer."""
        if type(data) is not bytes:
            data = _as_bytes(data)
        if type(addr) is not int or addr < 0:
            _check(addr, 0)
        fv = self.current_map
        length = len(data)
        fr = fv.mru
        if not fr.start <= addr < fr.end:
            fr = fv.lookup(addr) or fr
        if fr.start <= addr and length > 0 and addr + length <= fr.end:
            mr = fr.mr
            if mr.ram and not mr.readonly:
                off = fr.offset + addr - fr.start
                backing = mr.backing
                # Never None for RAM; see dispatch_read.
                if off + length <= len(backing):  # type: ignore[arg-type]
                    backing[off : off + length] = data  # type: ignore[index]
                    return _OK
        _check(addr, length)
        if length == 0:
            return _OK
        rounds = MAX_PIECES if _allow_async else None
        out = write_loop(fv, addr, data, attrs, self.system.native_big, rounds)
        if isinstance(out, PendingWrite):
            if not _allow_async:
                out.abandon()
                raise _NeedsAwait
            return _finish_write(out)
        return _RESULTS[out & 7]

    def read(
        self, addr: int, length: int, attrs: MemTxAttrs = MEMTXATTRS_UNSPECIFIED
    ) -> ReadResult:
        """Read synchronously (QEMU's ``address_space_read``); edges as for ``dispatch_read``.
        Ops that answer with a coroutine raise ``AsyncOpsError`` (nothing is left pending)."""
        try:
            # Never a coroutine without _allow_async; cast() would cost a call on the hot path.
            return self.dispatch_read(addr, length, attrs, False)  # type: ignore[return-value]
        except _NeedsAwait:
            raise AsyncOpsError(
                f"reading {length} bytes at {addr:#x} in {self.name!r} reached coroutine ops; "
                "use read_async"
            ) from None

    def write(
        self, addr: int, data: bytes, attrs: MemTxAttrs = MEMTXATTRS_UNSPECIFIED
    ) -> MemTxResult:
        """Write synchronously (QEMU's ``address_space_write``); edges as for
        ``dispatch_write``. Ops that answer with a coroutine raise ``AsyncOpsError``."""
        try:
            # Never a coroutine without _allow_async; cast() would cost a call on the hot path.
            return self.dispatch_write(addr, data, attrs, False)  # type: ignore[return-value]
        except _NeedsAwait:
            raise AsyncOpsError(
                f"writing {len(data)} bytes at {addr:#x} in {self.name!r} reached coroutine ops; "
                "use write_async"
            ) from None

    async def read_async(
        self, addr: int, length: int, attrs: MemTxAttrs = MEMTXATTRS_UNSPECIFIED
    ) -> ReadResult:
        """Read, awaiting coroutine ops as needed."""
        out = self.dispatch_read(addr, length, attrs)
        if isinstance(out, ReadResult):
            return out
        return await out

    async def write_async(
        self, addr: int, data: bytes, attrs: MemTxAttrs = MEMTXATTRS_UNSPECIFIED
    ) -> MemTxResult:
        """Write, awaiting coroutine ops as needed."""
        out = self.dispatch_write(addr, data, attrs)
        if isinstance(out, MemTxResult):
            return out
        return await out

    # -- listeners ----------------------------------------------------------------------------

    def register_listener(self, listener: MemoryListener) -> None:
        """Attach ``listener`` and replay the current view to it as ``region_add`` calls."""
        if listener in self.system._listeners:
            raise InvalidArgumentError("this listener is already registered")
        i = len(self.listeners)
        while i > 0 and self.listeners[i - 1].priority > listener.priority:
            i -= 1
        self.listeners.insert(i, listener)
        self.system._add_listener(listener)
        notify([listener], "begin")
        for fr in self.current_map.ranges:
            section = MemoryRegionSection.of(self, fr)
            notify([listener], "region_add", section)
        notify([listener], "commit")

    def unregister_listener(self, listener: MemoryListener) -> None:
        """Detach ``listener``, replaying the teardown as ``region_del`` calls."""
        if listener not in self.listeners:
            raise InvalidArgumentError("this listener is not registered on this address space")
        notify([listener], "begin")
        for fr in self.current_map.ranges:
            section = MemoryRegionSection.of(self, fr)
            notify([listener], "region_del", section)
        notify([listener], "commit")
        self.listeners.remove(listener)
        self.system._remove_listener(listener)


class _NeedsAwait(Exception):
    """A synchronous access reached ops that answered with awaitables (nothing left pending)."""


async def _finish_read(pending: PendingRead) -> ReadResult:
    return _as_read_result(await pending.settle())


async def _finish_write(pending: PendingWrite) -> MemTxResult:
    return _RESULTS[(await pending.settle()) & 7]
