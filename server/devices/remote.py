"""A device process's session: the accesses forwarded to it and what it answers.

A region served by a remote device gets ops (``Binding``) whose callbacks queue an access
request on the device's session and return a future. Whatever has queued up goes to the device
as one message (``Outbox``), so several pending accesses to one device travel together, in
dispatch order. Every forwarded access has a deadline; an answer after it is ignored. When the
session ends, its pending accesses fail at once.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from mmiobus.memory.access import (
    MEMTX_ERROR,
    AccessConstraints,
    Endianness,
    MemoryRegionOps,
    MemTxAttrs,
)
from mmiobus.memory.dispatch import engaged_owners
from mmiobus.memory.region import MemoryRegion
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.wire import attrs_to_pb

from .. import peer_log
from ..errors import InvalidRequest, LimitExceeded, Unavailable
from ..irq import IrqLine, IrqRegistry, line_matcher

log = structlog.get_logger("mmiobus.devices")

LATE_MEMORY = 4096  # ids of expired accesses remembered, so a late answer is not "unknown"


@dataclass(eq=False)
class DeviceIdentity:
    """One device name, across reconnections: the owner the re-entrancy guard knows."""

    name: str
    session: RemoteSession | None = None


@dataclass(eq=False)
class Binding:
    """A region a remote session serves, with the access rules it was bound with."""

    handle: int
    region_id: str
    mr: MemoryRegion
    session: RemoteSession
    valid: AccessConstraints
    impl: AccessConstraints
    endianness: Endianness
    posted_writes: bool
    deadline: float  # seconds
    claimed: bool  # claimed from the description (else registered by the device)

    def ops(self) -> MemoryRegionOps:
        return MemoryRegionOps(
            read=self.read,
            write=self.write,
            endianness=self.endianness,
            valid=self.valid,
            impl=self.impl,
            owner=self.session.identity,
        )

    def read(self, offset: int, size: int, attrs: MemTxAttrs) -> Any:
        return self.session.forward(self, offset, size, False, 0, attrs)

    def write(self, offset: int, size: int, value: int, attrs: MemTxAttrs) -> Any:
        return self.session.forward(self, offset, size, True, value, attrs)


ACCESS_BYTES = 48  # what one queued access request costs at most on the wire
COALESCE_BYTES = 1 << 20  # a message grows by coalescing up to this many bytes


class Outbox:
    """What goes to the device, in order: access requests queued while the previous message
    waited to be sent are coalesced into one ``AccessRequests`` message.

    The queue is bounded: past ``limit`` bytes (access requests, DMA replies, interrupt levels
    and every other message, as they would go on the wire) the device has stopped reading
    its stream. Then the queue is dropped, nothing more is queued, ``overflowed`` holds the
    reason, and ``on_overflow`` is called once (soon, from the event loop: never inside the
    access that found the queue full)."""

    def __init__(
        self, limit: int | None = None, on_overflow: Callable[[], None] | None = None
    ) -> None:
        self.messages: collections.deque[pb.BusMessage] = collections.deque()
        self._sizes: collections.deque[int] = collections.deque()  # bytes of each message
        self.queued = 0  # bytes waiting to be sent
        self.limit = limit
        self.on_overflow = on_overflow
        self.overflowed: LimitExceeded | None = None
        self.wake = asyncio.Event()
        self.closed = False
        self.ending = False  # the server is stopping: end the stream once the queue is empty

    def _append(self, message: pb.BusMessage, size: int) -> None:
        self.messages.append(message)
        self._sizes.append(size)
        self._grew(size)

    def _grew(self, size: int) -> None:
        self.queued += size
        if self.limit is not None and self.queued > self.limit:
            self._overflow()
        else:
            self.wake.set()

    def _coalesce(self, field: str, size: int) -> pb.BusMessage | None:
        """The last queued message if it carries ``field`` and may grow by ``size``."""
        if not self.messages or self._sizes[-1] + size > COALESCE_BYTES:
            return None
        last = self.messages[-1]
        if not last.HasField(field):  # type: ignore[arg-type]
            return None
        self._sizes[-1] += size
        return last

    def _overflow(self) -> None:
        limit = self.limit
        self.overflowed = LimitExceeded(
            f"the device stopped reading its stream: more than {limit} bytes waited to be sent "
            "to it (--max-device-queue)"
        )
        self.messages.clear()
        self._sizes.clear()
        self.queued = 0
        self.closed = True
        self.wake.set()
        if self.on_overflow is not None:
            asyncio.get_running_loop().call_soon(self.on_overflow)

    def send(self, message: pb.BusMessage) -> None:
        if not self.closed:
            self._append(message, message.ByteSize())

    def send_access(self, **fields: Any) -> pb.Access | None:
        """An access request with ``fields`` (built in its message, not copied into it); the
        request, or None if the session is over."""
        if self.closed:
            return None
        last = self._coalesce("accesses", ACCESS_BYTES)
        if last is not None:
            access: pb.Access = last.accesses.accesses.add(**fields)
            self._grew(ACCESS_BYTES)
        else:
            message = pb.BusMessage()
            access = message.accesses.accesses.add(**fields)
            self._append(message, ACCESS_BYTES)
        return access

    def send_dma_reply(self, reply: pb.DmaReply) -> None:
        """A reply to a batched DMA request: with the others waiting to be sent, if any."""
        if self.closed:
            return
        size = len(reply.data) + 24
        last = self._coalesce("dmas", size)
        if last is not None:
            last.dmas.replies.append(reply)
            self._grew(size)
        else:
            self._append(pb.BusMessage(dmas=pb.DmaReplies(replies=[reply])), size)

    def send_levels(self, lines: list[pb.IrqLine], coalesce: bool) -> None:
        """Interrupt levels: with the changes waiting to be sent, when ``coalesce``."""
        if self.closed:
            return
        size = sum(len(line.name) + 16 for line in lines) + 8
        last = self._coalesce("irqs", size) if coalesce else None
        if last is not None:
            last.irqs.lines.extend(lines)
            self._grew(size)
        else:
            self._append(pb.BusMessage(irqs=pb.IrqLevels(lines=lines)), size)

    async def next(self) -> pb.BusMessage | None:
        """The next message to send, or None once the session ends (or the server stops and
        everything queued has gone)."""
        while not self.messages:
            if self.closed or self.ending:
                return None
            self.wake.clear()
            await self.wake.wait()
        self.queued -= self._sizes.popleft()
        return self.messages.popleft()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


@dataclass(eq=False)
class _Pending:
    future: asyncio.Future[Any]
    binding: Binding
    size: int
    write: bool
    chain: frozenset[int]
    timer: asyncio.TimerHandle | None
    started: int = 0  # monotonic ns, when metrics time it


class RemoteSession:
    """One device attached over an Attach stream (see the module docstring). ``on_close`` runs
    once when the session ends (the registry releases its regions)."""

    in_process = False
    metrics: Any = None  # the bus's BusMetrics with `serve --metrics` (the registry sets it)

    def __init__(
        self,
        name: str,
        peer: str,
        requester_id: int,
        identity: DeviceIdentity,
        on_close: Callable[[RemoteSession], None],
        max_queue_bytes: int | None = None,
    ) -> None:
        self.name = name
        self.peer = peer
        self.requester_id = requester_id
        self.identity = identity
        self.bindings: dict[int, Binding] = {}
        self.outbox = Outbox(max_queue_bytes, self._overflowed)
        # Why the bus ended the session itself (the Attach stream ends with this status).
        self.failures: list[BaseException] = []
        self.counters = {"accesses": 0, "timeouts": 0, "dma": 0}
        self._on_close = on_close
        self._pending: dict[int, _Pending] = {}
        self._expired: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._resets: dict[int, asyncio.Future[None]] = {}
        self._ids = 0
        self.closed = False
        # The device's DMA, carried out in order (an OrderedAccesses, set by the service).
        self.dma: Any = None
        self._unwatch: Callable[[], None] | None = None

    @property
    def region_ids(self) -> list[str]:
        return [b.region_id for b in self.bindings.values()]

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -- forwarding accesses ------------------------------------------------------------------

    def forward(
        self, binding: Binding, offset: int, size: int, write: bool, value: int, attrs: MemTxAttrs
    ) -> Any:
        """Queue one access for the device: a future of the read value or write result, or
        None for a posted write (answered OK at once; order with later accesses is kept)."""
        if self.closed:
            return (0, MEMTX_ERROR) if not write else MEMTX_ERROR
        rid = self._next_id()
        posted = write and binding.posted_writes
        # Only the fields a read sets (the others are their defaults: building costs per field).
        if write:
            access = self.outbox.send_access(
                id=rid,
                handle=binding.handle,
                offset=offset,
                size=size,
                write=True,
                value=value,
                posted=posted,
            )
        else:
            access = self.outbox.send_access(id=rid, handle=binding.handle, offset=offset,
                                             size=size)  # fmt: skip
        if access is not None and (
            attrs.requester_id or attrs.secure or attrs.user or attrs.memory
        ):
            access.attrs.CopyFrom(attrs_to_pb(attrs))
        self.counters["accesses"] += 1
        if posted:
            return None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        timer = loop.call_later(binding.deadline, self._expire, rid)
        chain = engaged_owners() | {id(self.identity)}
        started = time.monotonic_ns() if self.metrics is not None else 0
        self._pending[rid] = _Pending(future, binding, size, write, chain, timer, started)
        return future

    def _expire(self, rid: int) -> None:
        p = self._pending.pop(rid, None)
        if p is None:
            return
        self._expired[rid] = None
        while len(self._expired) > LATE_MEMORY:
            self._expired.popitem(last=False)
        self.counters["timeouts"] += 1
        peer_log.warn(  # a device that stalls would otherwise log every access
            "device did not answer in time",
            self.peer,
            self.name,
            device=self.name,
            region=p.binding.region_id,
            access=rid,
            deadline_ms=round(p.binding.deadline * 1000),
        )
        if not p.future.done():
            p.future.set_result(MEMTX_ERROR if p.write else (0, MEMTX_ERROR))

    def answer(self, replies: pb.AccessReplies) -> None:
        """The device's answers; one that is not for a pending access, or carries a value wider
        than the access or result bits that do not exist, raises ``InvalidRequest`` (the
        session then ends, failing what is pending)."""
        for reply in replies.replies:
            p = self._pending.get(reply.id)
            if p is None:
                if reply.id in self._expired:
                    continue  # answered after its deadline: already failed with MEMTX_ERROR
                raise InvalidRequest(f"reply to access {reply.id}, which is not pending")
            # Checked while the access is still pending, so that refusing the reply (which
            # closes the session) fails it with the others.
            if reply.result > 7:
                raise InvalidRequest(
                    f"reply to access {reply.id} has result {reply.result}, not MemTxResult bits"
                )
            if not p.write and reply.value >> (8 * p.size):
                raise InvalidRequest(
                    f"reply to access {reply.id} ({p.size} bytes) carries value "
                    f"{reply.value:#x}, wider than {p.size} bytes"
                )
            del self._pending[reply.id]
            if p.timer is not None:
                p.timer.cancel()
            if not p.future.done():
                p.future.set_result(reply.result if p.write else (reply.value, reply.result))
            if p.started:
                self.metrics.observe(self.name, time.monotonic_ns() - p.started)

    def chain_of(self, access_id: int) -> frozenset[int]:
        """The causal chain of a DMA made while serving ``access_id`` (and this device)."""
        p = self._pending.get(access_id)
        base = p.chain if p is not None else frozenset()
        return base | {id(self.identity)}

    # -- resets -------------------------------------------------------------------------------

    async def reset(self, timeout: float) -> None:
        """Ask the device to reset and wait until it says it has (``TimeoutError`` if it does
        not in time, ``Unavailable`` if it leaves meanwhile)."""
        rid = self._next_id()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._resets[rid] = future
        self.outbox.send(pb.BusMessage(reset=pb.ResetRequest(id=rid)))
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._resets.pop(rid, None)

    def reset_done(self, reset_id: int) -> None:
        future = self._resets.pop(reset_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    # -- interrupt lines the device follows ---------------------------------------------------

    def follow_irqs(self, irqs: IrqRegistry, patterns: list[str]) -> None:
        """Send the levels of the lines matching ``patterns`` now, then every change (a later
        call replaces the patterns)."""
        wanted = line_matcher(patterns)  # InvalidRequest before anything changes
        if self._unwatch is not None:
            self._unwatch()

        def changed(line: IrqLine, _now: int) -> None:
            if wanted(line.name):
                self._send_levels([line])

        self._unwatch = irqs.watch(changed)
        self._send_levels(irqs.select(wanted), snapshot=True)

    def _send_levels(self, lines: list[IrqLine], snapshot: bool = False) -> None:
        out = [pb.IrqLine(name=ln.name, level=ln.level, changes=ln.changes) for ln in lines]
        if not out and not snapshot:
            return
        # Changes that wait to be sent travel together; a snapshot goes alone.
        self.outbox.send_levels(out, coalesce=not snapshot)

    # -- ending -------------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        """End the session because of ``error`` (its stream ends with that status)."""
        if not self.closed:
            self.failures.append(error)
            self.close()

    def _overflowed(self) -> None:
        self.close()  # close() records why

    def close(self) -> None:
        """Fail what is pending, release the regions; idempotent."""
        if self.closed:
            return
        self.closed = True
        overflowed = self.outbox.overflowed
        if overflowed is not None:  # whoever closes first (the stream may end before we do)
            self.failures.append(overflowed)
        if self.dma is not None:
            self.dma.close()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self.outbox.close()
        for p in self._pending.values():
            if p.timer is not None:
                p.timer.cancel()
            if not p.future.done():
                p.future.set_result(MEMTX_ERROR if p.write else (0, MEMTX_ERROR))
        self._pending.clear()
        for future in self._resets.values():
            if not future.done():
                future.set_exception(Unavailable(f"device {self.name!r} left"))
        self._on_close(self)
