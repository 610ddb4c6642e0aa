"""The ``mmiobus.v1.Bus`` service: accesses, topology, inspection.

Thin on purpose: validate, translate between messages and the model, map errors to status codes.
Every access runs on the event loop; a RAM or ROM access completes without awaiting anything,
so accesses from different clients interleave at access granularity and never tear.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from typing import Any

import grpc
import structlog
from mmiobus.machine import Machine
from mmiobus.memory.access import MASK64, MEMTXATTRS_UNSPECIFIED, TWO64, MemTxAttrs
from mmiobus.memory.addrspace import AddressSpace, ReadResult
from mmiobus.memory.flatview import FlatView, flatview_root
from mmiobus.memory.listener import MemoryListener, MemoryRegionSection
from mmiobus.memory.mtree import mtree
from mmiobus.memory.region import RegionKind
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc

from ..config import Limits
from ..trace import Access, Event, Gap, TraceFilter, TraceHub
from .convert import (
    ENDIAN_TO_PB,
    attrs_from_pb,
    region_spec_from_pb,
    region_to_pb,
    size_from_pb,
    size_to_pb,
)
from .status import RpcError, invalid, limit, not_found, status_of
from .streams import first_of, until

log = structlog.get_logger("mmiobus.bus")

PROTOCOL_VERSION = 1

RwResponse = pb.RwResponse
_now = time.monotonic_ns
_KINDS = {
    RegionKind.RAM: "ram",
    RegionKind.ROM: "rom",
    RegionKind.ROMD: "romd",
    RegionKind.MMIO: "mmio",
    RegionKind.CONTAINER: "unassigned",
    RegionKind.ALIAS: "unassigned",
}


class TraceDefaults:
    """Server-wide trace settings (`mmiobus serve --trace-queue / --trace-max-data`)."""

    def __init__(self) -> None:
        self.max_data_bytes = 64
        self.max_data_limit = 4096
        self.queue_capacity = 10_000
        self.batch = 512
        # A stream message costs far more than an event: after the first event of a batch,
        # wait this long for more to join it (unless the batch fills first).
        self.flush_seconds = 0.05


# Unbound: on upb messages, looking up a bound method costs more than calling it.
_has_field = pb.RwRequest.HasField
# Builds a NamedTuple without calling its Python-level __new__ (trace events are many).
_new_tuple = tuple.__new__
_which_oneof = pb.RwRequest.WhichOneof


class BusService(bus_pb2_grpc.BusServicer):
    """Serves one machine."""

    def __init__(self, machine: Machine, limits: Limits, version: str) -> None:
        self.machine = machine
        self.limits = limits
        self.version = version
        self.devices: dict[Any, str] = {}  # region -> name of the device serving it
        # (space, addr, length) -> the remote device session an access goes to entirely, else
        # None; set by the server when the Devices service is present.
        self.pipeline_key: Any = _no_pipeline
        self.trace = TraceHub()
        # region -> (its id, its kind) for trace events: looked up once, not per event
        self._region_names: dict[Any, tuple[str, str]] = {}
        self.trace_defaults = TraceDefaults()
        # Shutdown: long-lived streams end when `stopping` is set; accesses in flight are
        # counted so the server can wait for them before letting devices go.
        self.stopping = asyncio.Event()
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._waiting_streams: set[Any] = set()
        self._spaces: dict[str, AddressSpace] = {}
        self._space_ids: dict[int, str] = {}
        self.refresh_spaces()

    def refresh_spaces(self) -> None:
        """Rebuild the id -> address space map ("" is the first one)."""
        spaces = dict(self.machine.spaces)
        if self.machine.system.address_spaces:
            spaces[""] = self.machine.system.address_spaces[0]
        self._spaces = spaces
        self._space_ids = {id(as_): key for key, as_ in self.machine.spaces.items()}

    def describe(self, access: Access, seq: int) -> Event:
        """A trace Event for a recorded access, naming the region that served it."""
        space, view, addr, size, is_write, data, result, initiator, rid, latency, ts = access
        return self._event(
            seq, ts, space, view, addr, size, is_write, data, result, initiator, rid, latency
        )

    def _event(
        self,
        seq: int,
        ts: int,
        space: AddressSpace,
        view: FlatView,
        addr: int,
        size: int,
        is_write: bool,
        data: bytes,
        result: int,
        initiator: str,
        rid: int,
        latency: int,
    ) -> Event:
        fr = view.lookup(addr)
        if fr is None:
            region, offset, kind = "", addr, "unassigned"
        else:
            mr = fr.mr
            named = self._region_names.get(mr)
            if named is None:
                if len(self._region_names) > 4096:  # regions come and go: do not hoard them
                    self._region_names.clear()
                named = self._region_names[mr] = (
                    self.machine.region_ids.get(mr, mr.name),
                    _KINDS.get(mr.kind, "mmio"),
                )
            region, kind = named
            offset = fr.offset + (addr - fr.start)
            if kind == "ram" and mr.readonly:
                kind = "rom"
        return _new_tuple(
            Event,
            (
                seq,
                ts,
                self._space_ids.get(id(space), space.name),
                addr,
                size,
                is_write,
                data,
                int(result),
                region,
                offset,
                kind,
                initiator,
                rid,
                latency,
            ),
        )

    def publish(self, accesses: list[Access]) -> None:
        """Offer recorded accesses to the trace subscribers (call only if trace.active)."""
        self.trace.offer(accesses, self.describe)

    def _describe_planned(self, record: Planned, seq: int) -> Event:
        entry, view, out, t0, now = record
        req, space, attrs, data = entry[:4]
        if data:
            return self._event(
                seq, now, space, view, req.addr, len(data), True, data, out.result,
                "client", attrs.requester_id, now - t0 if t0 else 0,
            )  # fmt: skip
        return self._event(
            seq, now, space, view, req.addr, req.read, False, out.data, out.result,
            "client", attrs.requester_id, now - t0 if t0 else 0,
        )  # fmt: skip

    def _plan_span(self, plan: list[tuple[Any, AddressSpace, Any, bytes]]) -> tuple[int, int]:
        """Addresses that cover ``plan``'s accesses (generously at the top end)."""
        addrs = [entry[0].addr for entry in plan] or [0]
        return min(addrs), max(addrs) + self.limits.max_access_bytes

    def _planned_span(self, records: Sequence[Planned]) -> tuple[int, int]:
        return self._plan_span([r[0] for r in records])

    # -- accesses -----------------------------------------------------------------------------

    def _space(self, key: str, where: str = "address_space") -> AddressSpace:
        space = self._spaces.get(key)
        if space is None:
            if not key:
                raise not_found("this machine has no address space")
            raise not_found(f"{where}: no address space with id {key!r}")
        return space

    def _check(self, req: pb.RwRequest, where: str) -> tuple[AddressSpace, MemTxAttrs, str]:
        """Validate one access; returns (address space, attributes, "read" or "write")."""
        space = self._space(req.address_space, f"{where}.address_space")
        op = req.WhichOneof("op")
        if op == "read":
            if req.read > self.limits.max_access_bytes:
                raise limit(
                    f"{where}: reading {req.read} bytes exceeds the limit of "
                    f"{self.limits.max_access_bytes} bytes per access (--max-access-bytes)"
                )
        elif op == "write":
            if len(req.write) > self.limits.max_access_bytes:
                raise limit(
                    f"{where}: writing {len(req.write)} bytes exceeds the limit of "
                    f"{self.limits.max_access_bytes} bytes per access (--max-access-bytes)"
                )
        else:
            raise invalid(f"{where}: an access needs `read` (a length) or `write` (the data)")
        attrs = attrs_from_pb(req.attrs, where) if req.HasField("attrs") else MEMTXATTRS_UNSPECIFIED
        return space, attrs, op

    def _run(
        self, req: pb.RwRequest, space: AddressSpace, attrs: MemTxAttrs, op: str
    ) -> pb.RwResponse | Coroutine[Any, Any, pb.RwResponse]:
        """Start one access: its response, or a coroutine when a device must be awaited."""
        if op == "read":
            r = space.dispatch_read(req.addr, req.read, attrs)
            if type(r) is ReadResult:
                return RwResponse(id=req.id, data=r[0], result=r[1])
            return _read_reply(req.id, r)  # type: ignore[arg-type]
        w = space.dispatch_write(req.addr, req.write, attrs)
        if isinstance(w, int):
            return RwResponse(id=req.id, result=w)
        return _write_reply(req.id, w)

    def _plan(self, accesses: Any, where: str) -> list[tuple[Any, AddressSpace, Any, bytes]]:
        """Validate every access of a batch or stream message before any of them runs; returns
        (request, address space, attributes, data to write or b"") per access.

        Hot path: one pass, touching each field once. A write has non-empty `write`; anything
        else is a read of `read` bytes (a zero-length read or write does nothing either way).
        """
        limits = self.limits
        if len(accesses) > limits.max_batch_accesses:
            raise limit(
                f"{where}: {len(accesses)} accesses exceed the limit of "
                f"{limits.max_batch_accesses} per message (--max-batch-accesses)"
            )
        spaces = self._spaces
        max_access = limits.max_access_bytes
        plan = []
        total = 0
        unspecified = MEMTXATTRS_UNSPECIFIED
        for i, req in enumerate(accesses):
            space = spaces.get(req.address_space)
            if space is None:
                self._space(req.address_space, f"{where}[{i}].address_space")
            data = req.write
            if data:
                n = len(data)
            else:
                n = req.read
                if not n and _which_oneof(req, "op") is None:
                    raise invalid(
                        f"{where}[{i}]: an access needs `read` (a length) or `write` (the data)"
                    )
            if n > max_access:
                what = "writing" if data else "reading"
                raise limit(
                    f"{where}[{i}]: {what} {n} bytes exceeds the limit of {max_access} bytes "
                    "per access (--max-access-bytes)"
                )
            total += n
            attrs = (
                attrs_from_pb(req.attrs, f"{where}[{i}]")
                if _has_field(req, "attrs")
                else unspecified
            )
            plan.append((req, space, attrs, data))
        if total > limits.max_batch_bytes:
            raise limit(
                f"{where}: {total} bytes in one message exceed the limit of "
                f"{limits.max_batch_bytes} (--max-batch-bytes)"
            )
        return plan

    async def _execute(
        self, plan: list[tuple[Any, AddressSpace, Any, bytes]], results: Any
    ) -> None:
        """Run planned accesses in order, appending one result each to ``results``.

        An access that has to wait for a remote device does not hold up the next one when that
        one goes to the same device: it is sent at once (the device's stream keeps them in
        order, and several travel in one message). Anything else waits until every earlier
        access has its answer, so RAM and other devices see the accesses in order.
        """
        add = results.add
        waiting: list[tuple[Any, Any, Any]] = []  # (result message, awaitable, plan entry)
        device: object = None
        pipeline_key = self.pipeline_key
        traced: list[Planned] | None = None
        if self.trace.active and not self.trace.skip(len(plan), lambda: self._plan_span(plan)):
            traced = []
        view = None
        for entry in plan:
            req, space, attrs, data = entry
            out = add()
            out.id = req.id
            if waiting:
                key = pipeline_key(space, req.addr, len(data) or req.read)
                if key is None or key is not device:
                    await _settle(waiting, traced)
                    device = None
            if traced is not None:
                view = space.current_map  # before the access: its ops may remap
            if data:
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
                device = pipeline_key(space, req.addr, len(data) or req.read)
            waiting.append((out, pending, entry if traced is None else (*entry, view, _now())))
            if device is None:
                await _settle(waiting, traced)
        if waiting:
            await _settle(waiting, traced)
        if traced:
            self.trace.offer(traced, self._describe_planned, self._planned_span)

    def stop_streams(self) -> None:
        """Shutdown: end trace and topology streams, and RwStreams waiting for their client."""
        self.stopping.set()
        for task in list(self._waiting_streams):
            task.cancel()

    def _busy(self) -> None:
        self.inflight += 1
        self.idle.clear()

    def _done(self) -> None:
        self.inflight -= 1
        if not self.inflight:
            self.idle.set()

    async def Rw(self, request: pb.RwRequest, context: grpc.aio.ServicerContext) -> pb.RwResponse:
        self._busy()
        try:
            space, attrs, op = self._check(request, "request")
            tracing = self.trace.active
            if tracing:
                view, t0 = space.current_map, _now()
            out = self._run(request, space, attrs, op)
            waited = type(out) is not RwResponse
            if waited:
                out = await out  # type: ignore[misc]
            if tracing:
                write = op == "write"
                now = _now()
                self.publish(
                    [
                        Access(
                            space,
                            view,
                            request.addr,
                            len(request.write) if write else request.read,
                            write,
                            request.write if write else out.data,  # type: ignore[union-attr]
                            out.result,
                            "client",
                            attrs.requester_id,  # type: ignore[union-attr]
                            now - t0 if waited else 0,
                            now,
                        )
                    ]
                )
            return out  # type: ignore[return-value]
        except Exception as e:
            await _abort(context, e)
            raise
        finally:
            self._done()

    async def RwBatch(
        self, request: pb.RwBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.RwBatchResponse:
        self._busy()
        try:
            plan = self._plan(request.accesses, "accesses")
            reply = pb.RwBatchResponse()
            await self._execute(plan, reply.results)
            return reply
        except Exception as e:
            await _abort(context, e)
            raise
        finally:
            self._done()

    async def RwStream(
        self,
        request_iterator: AsyncIterator[pb.RwStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.RwStreamResponse]:
        n = 0
        task = asyncio.current_task()
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
                self._busy()
                try:
                    plan = self._plan(message.accesses, f"message {n}: accesses")
                    reply = pb.RwStreamResponse()
                    await self._execute(plan, reply.results)
                finally:
                    self._done()
                yield reply
                n += 1
        except Exception as e:
            await _abort(context, e)
            raise

    # -- tracing ------------------------------------------------------------------------------

    async def Trace(
        self, request: pb.TraceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TraceBatch]:
        defaults = self.trace_defaults
        try:
            spaces = tuple(
                self._space_ids[id(self._space(key, f"address_spaces[{i}]"))]
                for i, key in enumerate(request.address_spaces)
            )
            f = _trace_filter(request, spaces)
            max_data = request.max_data_bytes or defaults.max_data_bytes
            if max_data > defaults.max_data_limit:
                raise limit(
                    f"max_data_bytes {max_data} exceeds the server's limit of "
                    f"{defaults.max_data_limit} (--trace-max-data)"
                )
            capacity = min(request.queue_capacity or defaults.queue_capacity, 1_000_000)
        except Exception as e:
            await _abort(context, e)
            return
        wake = asyncio.Event()
        sub = self.trace.subscribe(f, capacity)
        sub.wake = wake.set
        # Read the peer now: asking a cancelled call for it crashes grpc (a segfault).
        peer = context.peer()
        log.info(
            "trace subscriber joined",
            peer=peer,
            subscribers=len(self.trace.subscribers),
            queue=capacity,
        )
        try:
            while not self.stopping.is_set():
                wake.clear()
                if not sub.queue and not sub.lost:
                    await first_of(wake.wait(), self.stopping.wait())
                    continue
                if len(sub.queue) < defaults.batch:
                    await asyncio.sleep(defaults.flush_seconds)  # let a batch gather
                items = sub.take(defaults.batch)
                yield _trace_batch(items, max_data)
        finally:
            self.trace.unsubscribe(sub)
            log.info("trace subscriber left", peer=peer, lost=sub.lost_total)

    async def WatchTopology(
        self, request: pb.WatchTopologyRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TopologyChange]:
        try:
            space = self._space(request.address_space)
        except Exception as e:
            await _abort(context, e)
            return
        watch = _TopologyWatch(self.machine, space)
        space.register_listener(watch)  # replays the current view: the snapshot
        try:
            async for message in until(_drain(watch.queue), self.stopping):
                if message is None:  # fell behind: start again from the current view
                    message = watch.snapshot()
                yield message
        finally:
            space.unregister_listener(watch)

    # -- topology -----------------------------------------------------------------------------

    async def ApplyTopology(
        self, request: pb.ApplyTopologyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyTopologyResponse:
        try:
            if len(request.ops) > self.limits.max_topology_ops:
                raise limit(
                    f"ops: {len(request.ops)} operations exceed the limit of "
                    f"{self.limits.max_topology_ops} per transaction (--max-topology-ops)"
                )
            machine = self.machine
            with machine.system.atomic():
                for i, op in enumerate(request.ops):
                    try:
                        self._apply(op, f"ops[{i}]")
                    except Exception as e:
                        status = status_of(e)
                        if status is None:
                            raise
                        what = op.WhichOneof("op") or "op"
                        message = status[1]
                        if not message.startswith(f"ops[{i}]"):
                            message = f"ops[{i}] ({what}): {message}"
                        raise RpcError(status[0], message + "; nothing was applied") from None
            self.refresh_spaces()
            log.info("topology changed", ops=len(request.ops), generation=machine.system.generation)
            return pb.ApplyTopologyResponse(
                applied=len(request.ops), generation=machine.system.generation
            )
        except Exception as e:
            await _abort(context, e)
            raise

    def _apply(self, op: pb.TopologyOp, where: str) -> None:
        m = self.machine
        kind = op.WhichOneof("op")
        if kind is None:
            raise invalid(
                f"{where}: empty operation (set one of create_region, add_subregion, ...)"
            )
        o = getattr(op, kind)
        where = f"{where}.{kind}"
        if kind == "create_region":
            spec = region_spec_from_pb(o, where)
            if spec.kind == "alias" and spec.target not in m.regions:
                raise not_found(f"{where}.target: no region with id {spec.target!r}")
            mr = m.create_region(spec)
            if o.contents:
                mr.backing[: len(o.contents)] = o.contents  # type: ignore[index]
        elif kind == "delete_region":
            m.delete_region(o.id)
        elif kind == "add_subregion":
            m.add_subregion(o.parent, o.child, o.addr, o.priority)
        elif kind == "remove_subregion":
            m.remove_subregion(o.child)
        elif kind == "set_address":
            m.region(o.id).set_address(o.addr)
        elif kind == "set_priority":
            m.region(o.id).set_priority(o.priority)
        elif kind == "set_enabled":
            m.region(o.id).set_enabled(o.enabled)
        elif kind == "set_alias_offset":
            m.region(o.id).set_alias_offset(o.offset)
        elif kind == "set_size":
            m.region(o.id).set_size(size_from_pb(o.size))
        elif kind == "create_address_space":
            if not o.id:
                raise invalid(f"{where}.id: an address space needs an id")
            m.create_address_space(o.id, o.name, o.root)
        elif kind == "set_readonly":
            m.region(o.id).set_readonly(o.readonly)
        elif kind == "set_romd":
            m.region(o.id).set_romd(o.romd_mode)
        else:  # pragma: no cover - a newer client
            raise invalid(f"{where}: unknown operation")

    async def GetTopology(
        self, request: pb.GetTopologyRequest, context: grpc.aio.ServicerContext
    ) -> pb.Topology:
        m = self.machine
        out = pb.Topology(
            endianness=ENDIAN_TO_PB[m.system.endianness], generation=m.system.generation
        )
        for mr in m.regions.values():
            out.regions.append(region_to_pb(m, mr, self.devices.get(mr, "")))
        for key, as_ in m.spaces.items():
            fv_root = flatview_root(as_.root)
            space = out.address_spaces.add(
                id=key,
                name=as_.name,
                root=m.region_id(as_.root),
                flatview_root=m.region_id(fv_root) if fv_root is not None else "",
            )
            if request.flat_views:
                for fr in as_.flatview.ranges:
                    space.flat_view.add(
                        start=fr.start,
                        size=size_to_pb(fr.end - fr.start),
                        region=m.region_id(fr.mr),
                        offset=fr.offset,
                        readonly=fr.readonly,
                        nonvolatile=fr.nonvolatile,
                    )
        return out

    async def Mtree(
        self, request: pb.MtreeRequest, context: grpc.aio.ServicerContext
    ) -> pb.MtreeResponse:
        text = mtree(self.machine.system, flat=request.flat, show_disabled=request.disabled)
        return pb.MtreeResponse(text=text)

    async def GetInfo(
        self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.Info:
        m = self.machine
        lim = self.limits
        return pb.Info(
            version=self.version,
            protocol_version=PROTOCOL_VERSION,
            machine=m.source,
            endianness=ENDIAN_TO_PB[m.system.endianness],
            address_spaces=[
                pb.AddressSpace(id=key, name=as_.name, root=m.region_id(as_.root))
                for key, as_ in m.spaces.items()
            ],
            limits=pb.Limits(
                max_access_bytes=lim.max_access_bytes,
                max_batch_bytes=lim.max_batch_bytes,
                max_batch_accesses=lim.max_batch_accesses,
                max_topology_ops=lim.max_topology_ops,
                max_message_bytes=lim.max_message_bytes,
            ),
        )


async def _settle(waiting: list[tuple[Any, Any, Any]], traced: list[Planned] | None = None) -> None:
    """Await pending accesses in order and fill in their results; empties ``waiting``."""
    for out, pending, entry in waiting:
        if entry[3]:  # data to write: a write
            w = await pending
            if w:
                out.result = w
        else:
            r = await pending
            out.data = r[0]
            if r[1]:
                out.result = r[1]
        if traced is not None:
            traced.append((entry, entry[4], out, entry[5], _now()))
    waiting.clear()


# A client access of a batch or stream as recorded while tracing, as cheaply as can be:
# (plan entry, the flat view it was issued against, its result message, when it started
# waiting for a device or 0, when it completed). It becomes an Event only for a subscriber
# that may want it.
Planned = tuple[tuple[Any, ...], FlatView, pb.RwResponse, int, int]


def _trace_filter(request: pb.TraceRequest, address_spaces: tuple[str, ...]) -> TraceFilter:
    """The filter a Trace request asks for; ``address_spaces`` are its ids, resolved."""
    for i, r in enumerate(request.ranges):
        if r.size == 0:
            raise invalid(f"ranges[{i}].size: 0 (a range needs at least one byte)")
    try:
        return TraceFilter(
            ranges=tuple(
                (r.start, TWO64 if r.size == MASK64 else r.start + r.size) for r in request.ranges
            ),
            address_spaces=address_spaces,
            regions=tuple(request.regions),
            direction={pb.READS: "read", pb.WRITES: "write"}.get(request.direction, "any"),
            kinds=tuple(request.kinds),
            initiators=tuple(request.initiators),
            results={pb.OK_ONLY: "ok", pb.FAULTS_ONLY: "fault"}.get(request.results, "any"),
            sample_rate=request.sample_rate or 1.0,
        )
    except ValueError as e:
        raise invalid(str(e)) from None


def _trace_batch(items: list[Event | Gap], max_data: int) -> pb.TraceBatch:
    """One stream message of trace events. Each event is built in place (``add``: building it
    apart and then adding it would copy it), with only the fields that differ from their
    defaults (each keyword costs about as much as a field)."""
    batch = pb.TraceBatch()
    add = batch.events.add
    for item in items:
        if type(item) is Gap:
            add(lost=item.lost)
            continue
        seq, ts, space, addr, size, write, data, result, region, offset, kind, who, rid, lat = item
        e = add(
            seq=seq,
            timestamp_ns=ts,
            address_space=space,
            addr=addr,
            size=size,
            data=data[:max_data],
            region=region,
            offset=offset,
            kind=kind,
            initiator=who,
        )
        if write:
            e.write = True
        if len(data) > max_data:
            e.data_truncated = True
        if result:
            e.result = result
        if rid:
            e.requester_id = rid
        if lat:
            e.latency_ns = lat
    return batch


class _TopologyWatch(MemoryListener):
    """A memory listener that turns each committed transaction into a TopologyChange."""

    QUEUE = 1024

    def __init__(self, machine: Machine, space: AddressSpace) -> None:
        self.machine = machine
        self.space = space
        self.queue: asyncio.Queue[pb.TopologyChange | None] = asyncio.Queue()
        self.current: pb.TopologyChange | None = None
        self.first = True
        self.behind = False

    def _range(self, section: MemoryRegionSection) -> pb.FlatRange:
        return pb.FlatRange(
            start=section.offset_within_address_space,
            size=size_to_pb(section.size),
            region=self.machine.region_id(section.mr),
            offset=section.offset_within_region,
            readonly=section.readonly,
            nonvolatile=section.nonvolatile,
        )

    def begin(self) -> None:
        self.current = pb.TopologyChange(snapshot=self.first)

    def region_add(self, section: MemoryRegionSection) -> None:
        if self.current is not None and section.address_space is self.space:
            self.current.changes.add(add=True, range=self._range(section))

    def region_del(self, section: MemoryRegionSection) -> None:
        if self.current is not None and section.address_space is self.space:
            self.current.changes.add(add=False, range=self._range(section))

    def commit(self) -> None:
        message, self.current = self.current, None
        if message is None or (not message.changes and not self.first):
            return  # a transaction that did not change this address space
        self.first = False
        message.generation = self.machine.system.generation
        if self.behind:
            return
        if self.queue.qsize() >= self.QUEUE:
            # Too far behind to replay every transaction: drop them and resynchronise.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            self.behind = True
            return
        self.queue.put_nowait(message)

    def snapshot(self) -> pb.TopologyChange:
        self.behind = False
        message = pb.TopologyChange(snapshot=True, generation=self.machine.system.generation)
        for fr in self.space.flatview.ranges:
            message.changes.add(
                add=True,
                range=pb.FlatRange(
                    start=fr.start,
                    size=size_to_pb(fr.end - fr.start),
                    region=self.machine.region_id(fr.mr),
                    offset=fr.offset,
                    readonly=fr.readonly,
                    nonvolatile=fr.nonvolatile,
                ),
            )
        return message


async def _drain(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    while True:
        yield await queue.get()


def _no_pipeline(space: AddressSpace, addr: int, length: int) -> object:
    return None


async def _read_reply(rid: int, pending: Awaitable[ReadResult]) -> pb.RwResponse:
    r = await pending
    return RwResponse(id=rid, data=r[0], result=r[1])


async def _write_reply(rid: int, pending: Awaitable[int]) -> pb.RwResponse:
    return RwResponse(id=rid, result=await pending)


async def _abort(context: grpc.aio.ServicerContext, error: Exception) -> None:
    """End the RPC with the status ``error`` maps to; log unexpected errors as bugs."""
    if isinstance(error, grpc.aio.AbortError):
        return
    status = status_of(error)
    if status is None:
        log.exception("internal error", error=repr(error))
        status = (
            grpc.StatusCode.INTERNAL,
            f"internal error: {error!r} (a bug; see the server log)",
        )
    await context.abort(*status)
