"""The ``mmiobus.v1.Bus`` service: accesses, topology, inspection.

Thin on purpose: validate, translate between messages and the model, map errors to status codes.
Every access runs on the event loop; a RAM or ROM access completes without awaiting anything,
so accesses from different clients interleave at access granularity and never tear.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any

import grpc
import structlog
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc

from ..access import MEMTXATTRS_UNSPECIFIED, MemTxAttrs
from ..addrspace import AddressSpace, ReadResult
from ..flatview import flatview_root
from ..machine import Machine
from ..mtree import mtree
from .convert import (
    ENDIAN_TO_PB,
    attrs_from_pb,
    region_spec_from_pb,
    region_to_pb,
    size_from_pb,
    size_to_pb,
)
from .limits import Limits
from .status import RpcError, invalid, limit, not_found, status_of

log = structlog.get_logger("mmiobus.bus")

PROTOCOL_VERSION = 1

RwResponse = pb.RwResponse
# Unbound: on upb messages, looking up a bound method costs more than calling it.
_has_field = pb.RwRequest.HasField
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
        self._spaces: dict[str, AddressSpace] = {}
        self.refresh_spaces()

    def refresh_spaces(self) -> None:
        """Rebuild the id -> address space map ("" is the first one)."""
        spaces = dict(self.machine.spaces)
        if self.machine.system.address_spaces:
            spaces[""] = self.machine.system.address_spaces[0]
        self._spaces = spaces

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
        waiting: list[tuple[Any, Any, bool]] = []  # (result message, awaitable, is a read)
        device: object = None
        pipeline_key = self.pipeline_key
        for req, space, attrs, data in plan:
            out = add()
            out.id = req.id
            if waiting:
                key = pipeline_key(space, req.addr, len(data) or req.read)
                if key is None or key is not device:
                    await _settle(waiting)
                    device = None
            if data:
                w = space.dispatch_write(req.addr, data, attrs)
                if isinstance(w, int):
                    if w:
                        out.result = w
                    continue
                pending: Any = w
            else:
                r = space.dispatch_read(req.addr, req.read, attrs)
                if type(r) is ReadResult:
                    out.data = r[0]
                    if r[1]:
                        out.result = r[1]
                    continue
                pending = r
            if not waiting:
                device = pipeline_key(space, req.addr, len(data) or req.read)
            waiting.append((out, pending, not data))
            if device is None:
                await _settle(waiting)
        if waiting:
            await _settle(waiting)

    async def Rw(self, request: pb.RwRequest, context: grpc.aio.ServicerContext) -> pb.RwResponse:
        try:
            out = self._run(request, *self._check(request, "request"))
            if type(out) is not RwResponse:
                out = await out  # type: ignore[misc]
            return out  # type: ignore[return-value]
        except Exception as e:
            await _abort(context, e)
            raise

    async def RwBatch(
        self, request: pb.RwBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.RwBatchResponse:
        try:
            plan = self._plan(request.accesses, "accesses")
            reply = pb.RwBatchResponse()
            await self._execute(plan, reply.results)
            return reply
        except Exception as e:
            await _abort(context, e)
            raise

    async def RwStream(
        self,
        request_iterator: AsyncIterator[pb.RwStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.RwStreamResponse]:
        n = 0
        try:
            async for message in request_iterator:
                plan = self._plan(message.accesses, f"message {n}: accesses")
                reply = pb.RwStreamResponse()
                await self._execute(plan, reply.results)
                yield reply
                n += 1
        except Exception as e:
            await _abort(context, e)
            raise

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


async def _settle(waiting: list[tuple[Any, Any, bool]]) -> None:
    """Await pending accesses in order and fill in their results; empties ``waiting``."""
    for out, pending, is_read in waiting:
        if is_read:
            r = await pending
            out.data = r[0]
            if r[1]:
                out.result = r[1]
        else:
            w = await pending
            if w:
                out.result = w
    waiting.clear()


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
