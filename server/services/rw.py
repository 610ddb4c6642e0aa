"""Client accesses: ``Rw``, ``RwBatch`` and ``RwStream``.

One validator checks every access of every request before any of them runs; one scheduler runs
them in order. Every access runs on the event loop; a RAM or ROM access completes without
awaiting anything, so accesses from different clients interleave at access granularity and
never tear.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from mmiobus.memory.access import MEMTXATTRS_UNSPECIFIED, MemTxAttrs
from mmiobus.memory.addrspace import AddressSpace, ReadResult
from mmiobus.memory.flatview import EMPTY_VIEW, FlatView
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.wire import attrs_from_pb

from ..core import BusCore
from ..errors import InvalidRequest, LimitExceeded
from ..ordered import PIPELINE_BYTES
from ..trace import Event
from .status import abort

_now = time.monotonic_ns
# Unbound: on upb messages, looking up a bound method costs more than calling it.
_has_field = pb.RwRequest.HasField
_which_oneof = pb.RwRequest.WhichOneof


# A batch lets others run after this many accesses: a 65,536-access batch of RAM reads takes
# about 0.1 s, traced more.
RUN_ALONE = 4096
# One validated access: (request, address space, attributes, the data to write (b"" for a
# read), whether it writes (a zero-length write has no data but is a write)). Plain tuples: a
# batch makes thousands of them, and a named tuple costs a call each.
PlannedAccess = tuple[pb.RwRequest, AddressSpace, MemTxAttrs, bytes, bool]

# A client access as recorded while tracing, as cheaply as can be: (planned access, the flat
# view it was issued against, its result message, when it started waiting for a device or 0,
# when it completed). It becomes an Event only for a subscriber that may want it.
Completed = tuple[PlannedAccess, FlatView, pb.RwResponse, int, int]


def plan(core: BusCore, accesses: Sequence[pb.RwRequest], where: str) -> list[PlannedAccess]:
    """Validate every access of a request (``where`` names it in errors: ``accesses``,
    ``message 3: accesses``, or ``request`` for a single ``Rw``) before any of them runs.

    Hot path: one pass, touching each field once.
    """
    limits = core.limits
    single = where == "request"
    if len(accesses) > limits.max_batch_accesses:
        raise LimitExceeded(
            f"{where}: {len(accesses)} accesses exceed the limit of "
            f"{limits.max_batch_accesses} per message (--max-batch-accesses)"
        )
    spaces = core.spaces
    max_access = limits.max_access_bytes
    out = []
    total = 0
    unspecified = MEMTXATTRS_UNSPECIFIED
    for i, req in enumerate(accesses):
        space = spaces.get(req.address_space)
        if space is None:
            space = core.space(req.address_space, f"{_at(where, i, single)}.address_space")
        data = req.write
        write = True
        if data:
            n = len(data)
        else:
            n = req.read
            if not n:
                op = _which_oneof(req, "op")
                if op is None:
                    raise InvalidRequest(
                        f"{_at(where, i, single)}: an access needs `read` (a length) or "
                        "`write` (the data)"
                    )
                write = op == "write"
            else:
                write = False
        if n > max_access:
            what = "writing" if write else "reading"
            raise LimitExceeded(
                f"{_at(where, i, single)}: {what} {n} bytes exceeds the limit of {max_access} "
                "bytes per access (--max-access-bytes)"
            )
        total += n
        attrs = (
            attrs_from_pb(req.attrs, _at(where, i, single))
            if _has_field(req, "attrs")
            else unspecified
        )
        out.append((req, space, attrs, data, write))
    if total > limits.max_batch_bytes and not single:
        raise LimitExceeded(
            f"{where}: {total} bytes in one message exceed the limit of "
            f"{limits.max_batch_bytes} (--max-batch-bytes)"
        )
    return out


def _at(where: str, i: int, single: bool) -> str:
    """How errors name access ``i`` of a request (only built for an error)."""
    return where if single else f"{where}[{i}]"


async def execute(core: BusCore, accesses: list[PlannedAccess], results: Any) -> None:
    """Run planned accesses in order, appending one result each to ``results`` (a repeated
    ``RwResponse`` field).

    An access that has to wait for a remote device does not hold up the next one when that one
    goes to the same device: it is sent at once (the device's stream keeps them in order, and
    several travel in one message), up to ``PIPELINE_BYTES`` in flight. Anything else waits
    until every earlier access has its answer, so RAM and other devices see the accesses in
    order. Every ``RUN_ALONE`` accesses the request lets others run (and offers what it traced),
    so that no batch holds the event loop for long.
    """
    add = results.add
    waiting: list[tuple[Any, Any, Any]] = []  # (result message, awaitable, access or record)
    in_flight = 0  # bytes of the accesses in ``waiting``
    ran = 0  # accesses since the loop last ran others
    device: object = None
    pipeline_key = core.devices.pipeline_key
    metrics = core.metrics
    traced: list[Completed] | None = None
    if core.trace.active and not core.trace.skip(len(accesses), lambda: _span(core, accesses)):
        traced = []
    view: FlatView = EMPTY_VIEW  # set before each access when tracing
    for entry in accesses:
        req, space, attrs, data, write = entry
        ran += 1
        if ran > RUN_ALONE:
            ran = in_flight = 0
            if waiting:
                await _settle(waiting, traced)
                device = None
            if traced:
                _offer(core, traced)
                traced = []
            await asyncio.sleep(0)
        out = add()
        out.id = req.id
        size = len(data) or req.read
        if waiting:
            key = pipeline_key(space, req.addr, size)
            if key is None or key is not device or in_flight + size > PIPELINE_BYTES:
                await _settle(waiting, traced)
                device = None
                in_flight = 0
        if traced is not None:
            view = space.current_map  # before the access: its ops may remap
        if write:
            w = space.dispatch_write(req.addr, data, attrs)
            if isinstance(w, int):
                if w:
                    out.result = w
                if traced is not None:
                    traced.append((entry, view, out, 0, _now()))
                continue
            pending: Any = w
        else:
            r = space.dispatch_read(req.addr, req.read, attrs)
            if type(r) is ReadResult:
                out.data = r[0]
                if r[1]:
                    out.result = r[1]
                if traced is not None:
                    traced.append((entry, view, out, 0, _now()))
                continue
            pending = r
        if not waiting:
            device = pipeline_key(space, req.addr, size)
        waiting.append((out, pending, entry if traced is None else (entry, view, _now())))
        in_flight += size
        if device is None:
            await _settle(waiting, traced)
            in_flight = 0
    if waiting:
        await _settle(waiting, traced)
    if metrics is not None:
        metrics.client(accesses, results)
    if traced:
        _offer(core, traced)


def _offer(core: BusCore, traced: list[Completed]) -> None:
    """Offer the client accesses recorded while tracing to the subscribers."""
    describer = core.describer

    def describe(record: Completed, seq: int) -> Event:
        entry, view, out, t0, now = record
        req, space, attrs, data, write = entry
        if write:
            size, shown = len(data), data
        else:
            size, shown = req.read, out.data
        return describer.event(
            seq, now, space, view, req.addr, size, write, shown, out.result,
            "client", attrs.requester_id, now - t0 if t0 else 0,
        )  # fmt: skip

    core.trace.offer(traced, describe, lambda records: _span(core, [r[0] for r in records]))


async def _settle(waiting: list[tuple[Any, Any, Any]], traced: list[Completed] | None) -> None:
    """Await pending accesses in order and fill in their results; empties ``waiting``."""
    for out, pending, record in waiting:
        if traced is not None:
            entry, view, t0 = record
        else:
            entry = record
        if entry[4]:  # a write
            w = await pending
            if w:
                out.result = w
        else:
            r = await pending
            out.data = r[0]
            if r[1]:
                out.result = r[1]
        if traced is not None:
            traced.append((entry, view, out, t0, _now()))
    waiting.clear()


def _span(core: BusCore, accesses: Sequence[PlannedAccess]) -> tuple[int, int]:
    """Addresses that cover ``accesses`` (generously at the top end)."""
    addrs = [a[0].addr for a in accesses] or [0]
    return min(addrs), max(addrs) + core.limits.max_access_bytes


class AccessService:
    """The access RPCs of ``mmiobus.v1.Bus``."""

    def __init__(self, core: BusCore) -> None:
        self.core = core
        self._waiting_streams: set[asyncio.Task[Any]] = set()

    def stop_streams(self) -> None:
        """Shutdown: end RwStreams that wait for their client (those busy finish)."""
        for task in list(self._waiting_streams):
            task.cancel()

    async def Rw(self, request: pb.RwRequest, context: grpc.aio.ServicerContext) -> pb.RwResponse:
        inflight = self.core.inflight
        inflight.enter()
        try:
            reply = pb.RwBatchResponse()
            await execute(self.core, plan(self.core, (request,), "request"), reply.results)
            return reply.results[0]
        except Exception as e:
            await abort(context, e)
            raise
        finally:
            inflight.leave()

    async def RwBatch(
        self, request: pb.RwBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.RwBatchResponse:
        inflight = self.core.inflight
        inflight.enter()
        try:
            accesses = plan(self.core, request.accesses, "accesses")
            reply = pb.RwBatchResponse()
            await execute(self.core, accesses, reply.results)
            return reply
        except Exception as e:
            await abort(context, e)
            raise
        finally:
            inflight.leave()

    async def RwStream(
        self,
        request_iterator: AsyncIterator[pb.RwStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.RwStreamResponse]:
        core = self.core
        n = 0
        task = asyncio.current_task()
        assert task is not None
        it = request_iterator.__aiter__()
        try:
            while True:
                # While this stream waits for its client, shutdown may end it at once.
                self._waiting_streams.add(task)
                try:
                    message = await it.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    self._waiting_streams.discard(task)
                core.inflight.enter()
                try:
                    accesses = plan(core, message.accesses, f"message {n}: accesses")
                    reply = pb.RwStreamResponse()
                    await execute(core, accesses, reply.results)
                finally:
                    core.inflight.leave()
                yield reply
                n += 1
        except Exception as e:
            await abort(context, e)
            raise
