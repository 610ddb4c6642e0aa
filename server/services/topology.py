"""Topology RPCs: ``ApplyTopology`` (a table of operations, applied all or none), the
structured ``GetTopology``, QEMU's ``Mtree`` text, ``GetInfo`` and ``WatchTopology`` (memory
listener events as a stream)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import structlog
from mmiobus.machine import Machine
from mmiobus.memory.addrspace import AddressSpace
from mmiobus.memory.errors import RenderWorkError
from mmiobus.memory.listener import MemoryListener, MemoryRegionSection
from mmiobus.memory.mtree import mtree
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.wire import endianness_to_pb, flat_range_to_pb, limits_to_pb, size_from_pb

from .. import authz
from ..core import BusCore
from ..errors import Conflict, InvalidRequest, LimitExceeded, NotFound, Reworded
from ..names import check_length
from .convert import cpu_to_pb, flat_view_to_pb, region_spec_from_pb, topology_to_pb
from .status import abort, answers_errors, status_of
from .streams import until

log = structlog.get_logger("mmiobus.bus")

PROTOCOL_VERSION = 1
_BACKED = (pb.RAM, pb.ROM, pb.ROMD)  # kinds of region with memory of their own
_DELETED = object()  # ends a watch whose address space was deleted

Operation = Callable[[Machine, Any, str], None]


def _create_region(m: Machine, o: pb.CreateRegion, where: str) -> None:
    check_length(o.id, f"{where}.id")
    check_length(o.name, f"{where}.name")
    spec = region_spec_from_pb(o, where)
    if spec.kind == "alias" and spec.target not in m.regions:
        raise NotFound(f"{where}.target: no region with id {spec.target!r}")
    mr = m.create_region(spec)
    if o.contents:
        mr.backing[: len(o.contents)] = o.contents  # type: ignore[index]


def _create_address_space(m: Machine, o: pb.CreateAddressSpace, where: str) -> None:
    if not o.id:
        raise InvalidRequest(f"{where}.id: an address space needs an id")
    check_length(o.id, f"{where}.id")
    check_length(o.name, f"{where}.name")
    m.create_address_space(o.id, o.name, o.root)


def _delete_address_space(m: Machine, o: pb.DeleteAddressSpace, where: str) -> None:
    if not o.id:
        raise InvalidRequest(f"{where}.id: name the address space to delete")
    m.delete_address_space(o.id)


OPERATIONS: dict[str, Operation] = {
    "create_region": _create_region,
    "delete_region": lambda m, o, w: m.delete_region(o.id),
    "add_subregion": lambda m, o, w: m.add_subregion(o.parent, o.child, o.addr, o.priority),
    "remove_subregion": lambda m, o, w: m.remove_subregion(o.child),
    "set_address": lambda m, o, w: m.region(o.id).set_address(o.addr),
    "set_priority": lambda m, o, w: m.region(o.id).set_priority(o.priority),
    "set_enabled": lambda m, o, w: m.region(o.id).set_enabled(o.enabled),
    "set_alias_offset": lambda m, o, w: m.region(o.id).set_alias_offset(o.offset),
    "set_size": lambda m, o, w: m.region(o.id).set_size(size_from_pb(o.size)),
    "create_address_space": _create_address_space,
    "set_readonly": lambda m, o, w: m.region(o.id).set_readonly(o.readonly),
    "set_romd": lambda m, o, w: m.region(o.id).set_romd(o.romd_mode),
    "delete_address_space": _delete_address_space,
}
"""One function per ``TopologyOp`` field: (machine, the operation's message, where) -> None."""


def apply_op(machine: Machine, op: pb.TopologyOp, where: str) -> None:
    """Apply one operation (inside the caller's transaction)."""
    kind = op.WhichOneof("op")
    if kind is None:
        raise InvalidRequest(
            f"{where}: empty operation (set one of create_region, add_subregion, ...)"
        )
    apply = OPERATIONS.get(kind)
    if apply is None:  # pragma: no cover - a newer client
        raise InvalidRequest(f"{where}: unknown operation {kind!r}")
    apply(machine, getattr(op, kind), f"{where}.{kind}")


class TopologyService:
    """The topology and inspection RPCs of ``mmiobus.v1.Bus``."""

    def __init__(self, core: BusCore) -> None:
        self.core = core
        self.watches: set[TopologyWatch] = set()
        # What CPU front-ends are told of the machine's CPUs (device trees made once).
        self.cpus = [cpu_to_pb(core.machine, cpu) for cpu in core.machine.cpus.values()]

    async def ApplyTopology(
        self, request: pb.ApplyTopologyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyTopologyResponse:
        core = self.core
        limits = core.limits
        try:
            if len(request.ops) > limits.max_topology_ops:
                raise LimitExceeded(
                    f"ops: {len(request.ops)} operations exceed the limit of "
                    f"{limits.max_topology_ops} per transaction (--max-topology-ops)"
                )
            machine = core.machine
            with _refused_renders(), machine.system.atomic():
                for i, op in enumerate(request.ops):
                    try:
                        self._check_shared(op)
                        authz.check_topology_op(core, op, f"ops[{i}]")
                        self._apply(op, f"ops[{i}]")
                        # A long transaction stops as soon as its renders are over budget.
                        machine.system.check_render_work()
                    except Exception as e:
                        status = status_of(e)
                        if status is None:
                            raise
                        what = op.WhichOneof("op") or "op"
                        message = status[1]
                        if not message.startswith(f"ops[{i}]"):
                            message = f"ops[{i}] ({what}): {message}"
                        raise Reworded(e, message + "; nothing was applied") from None
            core.topology_changed()
            core.devices.forget_deleted()
            self._end_watches()
            generation = machine.system.generation
            log.info("topology changed", ops=len(request.ops), generation=generation)
            return pb.ApplyTopologyResponse(applied=len(request.ops), generation=generation)
        except Exception as e:
            await abort(context, e)
            raise

    def _apply(self, op: pb.TopologyOp, where: str) -> None:
        """Apply one operation, charging the RAM it creates to the budget (--max-ram-bytes)
        before it is allocated."""
        kind = op.WhichOneof("op")
        machine, ram = self.core.machine, self.core.ram
        mr = None
        if kind in ("create_region", "create_address_space"):
            limit = self.core.limits.max_regions
            count = len(machine.regions) + len(machine.system.address_spaces)
            if count >= limit:
                raise LimitExceeded(
                    f"{where}.{kind}: the machine has {count} regions and address spaces, the "
                    f"limit (--max-regions {limit}); delete some first"
                )
        if kind == "create_region" and op.create_region.kind in _BACKED:
            size = size_from_pb(op.create_region.size)
            ram.check(None, size, f"{where}.create_region.size")
        elif kind == "set_size":
            mr = machine.regions.get(op.set_size.id)
            if mr is not None and mr.backing is not None:
                ram.check(mr, size_from_pb(op.set_size.size), f"{where}.set_size.size")
        elif kind == "delete_region":
            mr = machine.regions.get(op.delete_region.id)
        apply_op(machine, op, where)
        if kind == "create_region":
            mr = machine.regions.get(op.create_region.id)
        if mr is None or mr.backing is None:
            return
        if kind == "delete_region":
            ram.release(mr)
        else:
            ram.charge(mr)

    def _end_watches(self) -> None:
        """Watches of address spaces that were deleted end (they saw every range go)."""
        live = self.core.machine.system.address_spaces
        for watch in list(self.watches):
            if watch.space not in live:
                self.watches.discard(watch)
                watch.queue.put_nowait(_DELETED)

    def _check_shared(self, op: pb.TopologyOp) -> None:
        """A region whose bytes a CPU maps keeps its size (its mapping cannot follow)."""
        if op.WhichOneof("op") != "set_size":
            return
        mr = self.core.machine.regions.get(op.set_size.id)
        if mr is not None and self.core.sharing.is_shared(mr):
            raise Conflict(
                f"region {op.set_size.id!r} is mapped by a CPU front-end; it cannot be resized "
                "while the server runs"
            )

    @answers_errors
    async def GetTopology(
        self, request: pb.GetTopologyRequest, context: grpc.aio.ServicerContext
    ) -> pb.Topology:
        core = self.core
        return topology_to_pb(
            core.machine, core.devices.served, request.flat_views, core.config.device_deadline_ms
        )

    @answers_errors
    async def Mtree(
        self, request: pb.MtreeRequest, context: grpc.aio.ServicerContext
    ) -> pb.MtreeResponse:
        text = mtree(self.core.machine.system, flat=request.flat, show_disabled=request.disabled)
        return pb.MtreeResponse(text=text)

    @answers_errors
    async def GetInfo(
        self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.Info:
        core = self.core
        m = core.machine
        return pb.Info(
            version=core.version,
            protocol_version=PROTOCOL_VERSION,
            machine=m.source,
            endianness=endianness_to_pb(m.system.endianness),
            address_spaces=[
                pb.AddressSpace(id=key, name=as_.name, root=m.region_id(as_.root))
                for key, as_ in m.spaces.items()
            ],
            limits=limits_to_pb(core.limits),
            cpus=self.cpus,
        )

    async def WatchTopology(
        self, request: pb.WatchTopologyRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TopologyChange]:
        core = self.core
        try:
            space = core.space(request.address_space)
        except Exception as e:
            await abort(context, e)
            return
        watch = TopologyWatch(core.machine, space)
        space.register_listener(watch)  # replays the current view: the snapshot
        self.watches.add(watch)
        try:
            async for message in until(_drain(watch.queue), core.stopping):
                if message is _DELETED:
                    await context.abort(
                        grpc.StatusCode.NOT_FOUND,
                        f"address_space: {request.address_space!r} was deleted",
                    )
                if message is None:  # fell behind: start again from the current view
                    message = watch.snapshot()
                yield message
        finally:
            self.watches.discard(watch)
            if watch in space.listeners:  # a deleted address space's listeners are gone
                space.unregister_listener(watch)


class TopologyWatch(MemoryListener):
    """A memory listener that turns each committed transaction into a TopologyChange."""

    QUEUE = 1024

    def __init__(self, machine: Machine, space: AddressSpace) -> None:
        self.machine = machine
        self.space = space
        # TopologyChange, None (fell behind) or _DELETED
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.current: pb.TopologyChange | None = None
        self.first = True
        self.behind = False

    def _range(self, section: MemoryRegionSection) -> pb.FlatRange:
        return flat_range_to_pb(
            section.offset_within_address_space,
            section.size,
            self.machine.region_id(section.mr),
            section.offset_within_region,
            section.readonly,
            section.nonvolatile,
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
        for r in flat_view_to_pb(self.machine, self.space):
            message.changes.add(add=True, range=r)
        return message


@contextlib.contextmanager
def _refused_renders() -> Iterator[None]:
    """A transaction refused as a whole for its render work says so."""
    try:
        yield
    except RenderWorkError as e:
        raise Reworded(e, f"ops: {e}; nothing was applied") from None


async def _drain(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    while True:
        yield await queue.get()
