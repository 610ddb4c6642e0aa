"""The ``mmiobus.v1.Devices`` service: device sessions, region bindings, DMA, interrupts.

A region served by a device gets ops whose callbacks queue an access request on the device's
session and return a future; the session sends whatever has queued up as one message, so several
pending accesses to one device travel together, in dispatch order. Every forwarded access has a
deadline. When a session ends, its pending accesses fail at once, the regions it claimed fall
back to their declared ``absent`` behaviour, and the regions it registered are unmapped.

Devices the machine description names with ``device: {class: ...}`` run inside the server
through the same ``Device`` class (``LocalHost``), so both kinds behave alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import importlib
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from mmiobus.machine.build import Machine, constraints
from mmiobus.machine.description import InProcessDevice, MmioSpec, RomdSpec
from mmiobus.memory.access import (
    MEMTX_ERROR,
    AccessConstraints,
    Endianness,
    MemoryRegionOps,
    MemTxAttrs,
    MemTxResult,
)
from mmiobus.memory.addrspace import ReadResult
from mmiobus.memory.dispatch import engaged_owners, reset_engaged_owners, set_engaged_owners
from mmiobus.memory.errors import NotFoundError
from mmiobus.memory.region import MemoryRegion, RegionKind
from mmiobus.v1 import bus_pb2 as bpb
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.v1 import devices_pb2_grpc

from ..irq import IrqRegistry, matches
from ..trace import Access
from .convert import ENDIAN_FROM_PB, ENDIAN_TO_PB, attrs_from_pb, size_from_pb, size_to_pb
from .status import RpcError, status_of
from .streams import first_of

log = structlog.get_logger("mmiobus.devices")

PROTOCOL_MIN = PROTOCOL_MAX = 1
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")  # used with fullmatch
LATE_MEMORY = 4096  # ids of expired accesses remembered, so a late answer is not "unknown"


class SessionError(Exception):
    """End a device's stream with this status (malformed or unexpected messages)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(eq=False)
class DeviceIdentity:
    """One device name, across reconnections: the owner the re-entrancy guard knows."""

    name: str
    session: Session | None = None


@dataclass(eq=False)
class Binding:
    """A region a session serves."""

    handle: int
    region_id: str
    mr: MemoryRegion
    session: Session
    constraints: tuple[AccessConstraints, AccessConstraints, Endianness]
    posted_writes: bool
    deadline: float  # seconds
    claimed: bool  # claimed from the description (else registered by the device)

    def ops(self) -> MemoryRegionOps:
        valid, impl, endianness = self.constraints
        return MemoryRegionOps(
            read=self.read,
            write=self.write,
            endianness=endianness,
            valid=valid,
            impl=impl,
            owner=self.session.identity,
        )

    def read(self, offset: int, size: int, attrs: MemTxAttrs) -> Any:
        return self.session.forward(self, offset, size, False, 0, attrs)

    def write(self, offset: int, size: int, value: int, attrs: MemTxAttrs) -> Any:
        return self.session.forward(self, offset, size, True, value, attrs)


@dataclass(eq=False)
class _Pending:
    future: asyncio.Future[Any]
    binding: Binding
    size: int
    write: bool
    chain: frozenset[int]
    timer: asyncio.TimerHandle | None
    sent: float


class Session:
    """One attached device (remote, over an Attach stream)."""

    def __init__(self, service: DevicesService, name: str, peer: str, requester_id: int) -> None:
        self.service = service
        self.name = name
        self.peer = peer
        self.requester_id = requester_id
        self.identity = service.identity(name)
        self.bindings: dict[int, Binding] = {}
        self.pending: dict[int, _Pending] = {}
        self.expired: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.resets: dict[int, asyncio.Future[None]] = {}
        self.outgoing: collections.deque[pb.BusMessage] = collections.deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.ending = False  # the server is stopping: end the stream once the queue is empty
        self.error: SessionError | None = None
        self._ids = 0
        self.counters = {"accesses": 0, "timeouts": 0, "dma": 0}

    # -- sending ------------------------------------------------------------------------------

    def send(self, message: pb.BusMessage) -> None:
        if not self.closed:
            self.outgoing.append(message)
            self.wake.set()

    def forward(
        self, binding: Binding, offset: int, size: int, write: bool, value: int, attrs: MemTxAttrs
    ) -> Any:
        """Queue one access for the device: a future of the read value or write result, or
        None for a posted write (answered OK at once; order with later accesses is kept)."""
        if self.closed:
            return (0, MEMTX_ERROR) if not write else MEMTX_ERROR
        self._ids += 1
        rid = self._ids
        posted = write and binding.posted_writes
        access = pb.Access(
            id=rid,
            handle=binding.handle,
            offset=offset,
            size=size,
            write=write,
            value=value,
            posted=posted,
        )
        if attrs.requester_id or attrs.secure or attrs.user or attrs.memory:
            access.attrs.CopyFrom(
                bpb.Attrs(
                    requester_id=attrs.requester_id,
                    secure=attrs.secure,
                    user=attrs.user,
                    memory=attrs.memory,
                )
            )
        last = self.outgoing[-1] if self.outgoing else None
        if last is not None and last.HasField("accesses"):
            last.accesses.accesses.append(access)
        else:
            self.outgoing.append(pb.BusMessage(accesses=pb.AccessRequests(accesses=[access])))
        self.wake.set()
        self.counters["accesses"] += 1
        self.service.counters["forwarded"] += 1
        if posted:
            return None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        timer = loop.call_later(binding.deadline, self._expire, rid)
        self.pending[rid] = _Pending(
            future,
            binding,
            size,
            write,
            engaged_owners() | {id(self.identity)},
            timer,
            time.monotonic(),
        )
        return future

    def _expire(self, rid: int) -> None:
        p = self.pending.pop(rid, None)
        if p is None:
            return
        self.expired[rid] = None
        while len(self.expired) > LATE_MEMORY:
            self.expired.popitem(last=False)
        self.counters["timeouts"] += 1
        self.service.counters["timeouts"] += 1
        log.warning(
            "device did not answer in time",
            device=self.name,
            region=p.binding.region_id,
            access=rid,
            deadline_ms=round(p.binding.deadline * 1000),
        )
        if not p.future.done():
            p.future.set_result(MEMTX_ERROR if p.write else (0, MEMTX_ERROR))

    async def next_message(self) -> pb.BusMessage | None:
        while not self.outgoing:
            if self.closed or self.ending:
                return None
            self.wake.clear()
            await self.wake.wait()
        return self.outgoing.popleft()

    # -- receiving ----------------------------------------------------------------------------

    def answer(self, replies: pb.AccessReplies) -> None:
        for reply in replies.replies:
            p = self.pending.get(reply.id)
            if p is None:
                if reply.id in self.expired:
                    continue  # answered after its deadline: already failed with MEMTX_ERROR
                raise SessionError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"reply to access {reply.id}, which is not pending",
                )
            # Checked while the access is still pending, so that refusing the reply (which
            # closes the session) fails it with the others.
            if reply.result > 7:
                raise SessionError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"reply to access {reply.id} has result {reply.result}, not MemTxResult bits",
                )
            if not p.write and reply.value >> (8 * p.size):
                raise SessionError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"reply to access {reply.id} ({p.size} bytes) carries value "
                    f"{reply.value:#x}, wider than {p.size} bytes",
                )
            del self.pending[reply.id]
            if p.timer is not None:
                p.timer.cancel()
            if not p.future.done():
                p.future.set_result(reply.result if p.write else (reply.value, reply.result))

    def chain_of(self, access_id: int) -> frozenset[int]:
        """The causal chain of a DMA made while serving ``access_id`` (and this device)."""
        p = self.pending.get(access_id)
        base = p.chain if p is not None else frozenset()
        return base | {id(self.identity)}

    # -- ending -------------------------------------------------------------------------------

    def close(self) -> None:
        """Fail what is pending, release the regions; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        for p in self.pending.values():
            if p.timer is not None:
                p.timer.cancel()
            if not p.future.done():
                p.future.set_result(MEMTX_ERROR if p.write else (0, MEMTX_ERROR))
        self.pending.clear()
        for fut in self.resets.values():
            if not fut.done():
                fut.set_exception(
                    RpcError(grpc.StatusCode.UNAVAILABLE, f"device {self.name!r} left")
                )
        self.service.release(self)


class DevicesService(devices_pb2_grpc.DevicesServicer):
    """Device sessions, in-process devices, interrupt lines."""

    def __init__(
        self,
        machine: Machine,
        irqs: IrqRegistry,
        on_topology: Callable[[], None],
        version: str,
        default_deadline_ms: float = 1000.0,
        tokens: frozenset[str] = frozenset(),
        max_access_bytes: int = 1 << 20,
    ) -> None:
        self.machine = machine
        self.irqs = irqs
        self.on_topology = on_topology
        self.version = version
        self.default_deadline = default_deadline_ms / 1000.0
        self.tokens = tokens
        self.max_access_bytes = max_access_bytes
        self.identities: dict[str, DeviceIdentity] = {}
        self.sessions: dict[str, Session] = {}
        self.local: dict[str, LocalHost] = {}
        self.served: dict[MemoryRegion, str] = {}  # region -> device name serving it
        self.counters: collections.Counter[str] = collections.Counter()
        self._handles = 0
        self.tracer: Any = None  # the Bus service: publish() for DMA trace events
        self.stopping = asyncio.Event()
        for key, declared in machine.declared.items():
            spec = declared.spec
            if isinstance(spec, (MmioSpec, RomdSpec)) and isinstance(spec.device, str):
                self.set_absent(machine.regions[key], spec)

    def pipeline_key(self, space: Any, addr: int, length: int) -> object:
        """The session an access goes to entirely (one range of a region it serves), else
        None: accesses with the same key may be sent before the previous one is answered."""
        fr = space.current_map.lookup(addr)
        if fr is None or addr + length > fr.end:
            return None
        owner = fr.mr.ops.owner
        if type(owner) is DeviceIdentity and owner.session is not None:
            return owner.session
        return None

    def identity(self, name: str) -> DeviceIdentity:
        ident = self.identities.get(name)
        if ident is None:
            ident = self.identities[name] = DeviceIdentity(name)
        return ident

    # -- absent devices -----------------------------------------------------------------------

    def set_absent(self, mr: MemoryRegion, spec: MmioSpec | RomdSpec) -> None:
        """What a claimable region answers while its device is not attached."""
        if spec.absent == "unassigned":
            mr.set_ops(None)
            return
        valid, impl = constraints(spec.valid), constraints(spec.impl)
        endianness = Endianness(spec.endianness)
        if spec.absent == "ram":
            backing = absent_memory(mr)

            def read(offset: int, size: int, attrs: MemTxAttrs) -> int:
                chunk = bytes(backing[offset : offset + size]).ljust(size, b"\0")
                return int.from_bytes(chunk, "little")

            def write(offset: int, size: int, value: int, attrs: MemTxAttrs) -> None:
                if offset < len(backing):
                    end = min(offset + size, len(backing))
                    backing[offset:end] = value.to_bytes(size, "little")[: end - offset]

            mr.set_ops(
                MemoryRegionOps(
                    read=read, write=write, endianness=Endianness.LITTLE, valid=valid, impl=impl
                )
            )
            return
        mr.set_ops(
            MemoryRegionOps(
                read=lambda o, s, a: (0, MEMTX_ERROR),
                write=lambda o, s, v, a: MEMTX_ERROR,
                endianness=endianness,
                valid=valid,
                impl=impl,
            )
        )

    # -- in-process devices -------------------------------------------------------------------

    async def start_local_devices(self) -> None:
        """Instantiate and bind the devices the machine description runs in the server."""
        for key, declared in self.machine.declared.items():
            spec = declared.spec
            if isinstance(spec, (MmioSpec, RomdSpec)) and isinstance(spec.device, InProcessDevice):
                host = LocalHost(self, spec.device.name or key, key, spec)
                self.local[host.name] = host
                await host.start()

    def end_sessions(self) -> None:
        """Shutdown: end every device's stream (its pending accesses fail at once)."""
        self.stopping.set()
        for session in list(self.sessions.values()):
            session.ending = True
            session.wake.set()

    async def stop_local_devices(self) -> None:
        for host in self.local.values():
            await host.stop()

    # -- sessions -----------------------------------------------------------------------------

    def release(self, session: Session) -> None:
        """A session ended: claimed regions go absent, registered ones go away."""
        if self.sessions.get(session.name) is session:
            del self.sessions[session.name]
        session.identity.session = None
        with self.machine.system.transaction():
            for b in session.bindings.values():
                self._unbind(b)
        session.bindings.clear()
        for line in self.irqs.select([f"{session.name}.*"]):
            self.irqs.set(line.name, False)
        self.on_topology()
        log.info("device detached", device=session.name, peer=session.peer)

    def _unbind(self, b: Binding) -> None:
        self.served.pop(b.mr, None)
        if b.claimed:
            declared = self.machine.declared.get(b.region_id)
            if declared is not None and declared.spec.device is not None:
                self.set_absent(b.mr, declared.spec)
            elif declared is not None:
                b.mr.set_ops(None)  # no device declared: back to what it answered before
            else:  # pragma: no cover - the region was deleted meanwhile
                b.mr.set_ops(None)
        elif b.region_id in self.machine.regions:
            self.machine.delete_region(b.region_id)

    async def Attach(
        self, request_iterator: AsyncIterator[pb.DeviceMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BusMessage]:
        peer = context.peer() or ""
        it = request_iterator.__aiter__()
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            return
        try:
            session = self._hello(first, peer)
        except SessionError as e:
            log.warning("device refused", peer=peer, reason=e.message)
            await context.abort(e.code, e.message)
            return
        yield pb.BusMessage(
            welcome=pb.Welcome(
                protocol_version=PROTOCOL_MAX,
                bus_version=self.version,
                endianness=ENDIAN_TO_PB[self.machine.system.endianness],
            )
        )
        reader = asyncio.create_task(self._read(session, it), name=f"device-{session.name}")
        try:
            while True:
                message = await session.next_message()
                if message is None:
                    break
                yield message
        finally:
            reader.cancel()
            session.close()
        if session.error is not None:
            log.warning("device stream closed", device=session.name, reason=session.error.message)
            await context.abort(session.error.code, session.error.message)

    def _hello(self, message: pb.DeviceMessage, peer: str) -> Session:
        if message.WhichOneof("msg") != "hello":
            raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be hello")
        hello = message.hello
        if self.tokens and hello.token not in self.tokens:
            raise SessionError(
                grpc.StatusCode.UNAUTHENTICATED,
                "device credentials are missing or wrong (the bus was started with "
                "--device-token; pass the same token to the device)",
            )
        low, high = hello.min_protocol or 1, hello.max_protocol or hello.min_protocol or 1
        if high < PROTOCOL_MIN or low > PROTOCOL_MAX or low > high:
            raise SessionError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the device speaks protocol {low}..{high}, this bus speaks "
                f"{PROTOCOL_MIN}..{PROTOCOL_MAX}",
            )
        if not NAME_RE.fullmatch(hello.name):
            raise SessionError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"device name {hello.name!r} must be letters, digits, '_', '.', '-'",
            )
        if hello.requester_id > 0xFFFF:
            raise SessionError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"requester_id {hello.requester_id} does not fit in 16 bits",
            )
        if hello.name in self.sessions or hello.name in self.local:
            other = self.sessions.get(hello.name)
            where = f" from {other.peer}" if other else " in the server"
            raise SessionError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"a device named {hello.name!r} is already attached{where}",
            )
        session = Session(self, hello.name, peer, hello.requester_id)
        session.identity.session = session
        self.sessions[hello.name] = session
        log.info("device attached", device=hello.name, peer=peer)
        return session

    async def _read(self, session: Session, it: AsyncIterator[pb.DeviceMessage]) -> None:
        try:
            async for message in it:
                kind = message.WhichOneof("msg")
                if kind == "replies":
                    session.answer(message.replies)
                elif kind == "region":
                    self._region(session, message.region)
                elif kind == "dma":
                    self._dma(session, message.dma)
                elif kind == "irq":
                    self._irq(session, message.irq)
                elif kind == "reset_done":
                    fut = session.resets.pop(message.reset_done.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                elif kind == "hello":
                    raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, "hello sent twice")
                else:
                    raise SessionError(
                        grpc.StatusCode.INVALID_ARGUMENT, "an empty message (set one field)"
                    )
        except SessionError as e:
            session.error = e
        except grpc.RpcError:
            pass  # the stream broke: close() below fails what is pending
        except Exception as e:  # a bug, or a message that did not parse
            status = status_of(e)
            if status is not None:
                session.error = SessionError(*status)
            else:
                log.exception("device session failed", device=session.name)
                session.error = SessionError(grpc.StatusCode.INTERNAL, f"internal error: {e!r}")
        session.close()

    # -- regions ------------------------------------------------------------------------------

    def _region(self, session: Session, req: pb.RegionRequest) -> None:
        op = req.WhichOneof("op")
        try:
            if op == "claim":
                binding = self._claim(session, req.claim.region)
            elif op == "register":
                binding = self._register(session, req.register)
            elif op == "unmap":
                self._unmap(session, req.unmap.handle)
                session.send(pb.BusMessage(region=pb.RegionReply(request_id=req.request_id)))
                return
            else:
                raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, "empty region request")
        except (SessionError, RpcError) as e:
            session.send(
                pb.BusMessage(
                    region=pb.RegionReply(
                        request_id=req.request_id, code=e.code.value[0], message=e.message
                    )
                )
            )
            return
        except Exception as e:
            status = status_of(e)
            if status is None:
                raise
            session.send(
                pb.BusMessage(
                    region=pb.RegionReply(
                        request_id=req.request_id, code=status[0].value[0], message=status[1]
                    )
                )
            )
            return
        self.on_topology()
        session.send(
            pb.BusMessage(
                region=pb.RegionReply(
                    request_id=req.request_id, handle=binding.handle, region=_describe(binding)
                )
            )
        )

    def _new_handle(self) -> int:
        self._handles += 1
        return self._handles

    def _claim(self, session: Session, region_id: str) -> Binding:
        declared = self.machine.declared.get(region_id)
        mr = self.machine.regions.get(region_id)
        if declared is None or mr is None:
            raise SessionError(grpc.StatusCode.NOT_FOUND, f"no region with id {region_id!r}")
        spec = declared.spec
        if not isinstance(spec, (MmioSpec, RomdSpec)):
            raise SessionError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"region {region_id!r} is {spec.kind}: only mmio and romd regions have devices",
            )
        if isinstance(spec.device, InProcessDevice):
            raise SessionError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"region {region_id!r} is served by a device running in the server",
            )
        if spec.device is not None and spec.device != session.name:
            raise SessionError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"region {region_id!r} belongs to device {spec.device!r}, not {session.name!r}",
            )
        if mr in self.served:
            raise SessionError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"region {region_id!r} is already served by device {self.served[mr]!r}",
            )
        b = self._bind(session, region_id, mr, spec, claimed=True)
        log.info("region claimed", device=session.name, region=region_id)
        return b

    def _register(self, session: Session, r: pb.RegisterRegion) -> Binding:
        m = self.machine
        region_id = r.id or self._fresh_region_id(session.name)
        spec = MmioSpec.model_validate(
            {
                "name": r.name or region_id,
                "id": region_id,
                "kind": "mmio",
                "size": size_from_pb(r.size),
                "valid": {"min": r.valid.min, "max": r.valid.max, "unaligned": r.valid.unaligned},
                "impl": {"min": r.impl.min, "max": r.impl.max, "unaligned": r.impl.unaligned},
                "endianness": ENDIAN_FROM_PB.get(r.endianness, "native"),
                "posted_writes": r.posted_writes,
                "device": session.name,
                **({"deadline": r.deadline_ms} if r.deadline_ms else {}),
            }
        )
        where = r.WhichOneof("parent")
        with m.system.atomic():
            if where == "container":
                parent = m.region(r.container)
            else:
                parent = m.address_space(r.address_space).root
            mr = m.create_region(spec)
            parent.add_subregion(r.addr, mr, r.priority)
            b = self._bind(session, region_id, mr, spec, claimed=False)
        log.info("region registered", device=session.name, region=region_id, addr=hex(r.addr))
        return b

    def _bind(
        self,
        session: Session,
        region_id: str,
        mr: MemoryRegion,
        spec: MmioSpec | RomdSpec,
        *,
        claimed: bool,
    ) -> Binding:
        """Route ``mr``'s ops to ``session`` with the access rules ``spec`` declares."""
        b = Binding(
            self._new_handle(),
            region_id,
            mr,
            session,
            (constraints(spec.valid), constraints(spec.impl), Endianness(spec.endianness)),
            spec.posted_writes,
            (spec.deadline / 1000.0) if spec.deadline else self.default_deadline,
            claimed=claimed,
        )
        mr.set_ops(b.ops())
        session.bindings[b.handle] = b
        self.served[mr] = session.name
        return b

    def _fresh_region_id(self, device: str) -> str:
        n = 0
        while f"{device}.{n}" in self.machine.regions:
            n += 1
        return f"{device}.{n}"

    def _unmap(self, session: Session, handle: int) -> None:
        b = session.bindings.pop(handle, None)
        if b is None:
            raise SessionError(grpc.StatusCode.NOT_FOUND, f"no region with handle {handle}")
        with self.machine.system.transaction():
            self._unbind(b)
        self.on_topology()

    # -- DMA and interrupts -------------------------------------------------------------------

    def _dma(self, session: Session, req: pb.DmaRequest) -> None:
        session.counters["dma"] += 1
        chain = session.chain_of(req.on_behalf_of)
        ctx = contextvars.copy_context()
        ctx.run(set_engaged_owners, chain)
        asyncio.get_running_loop().create_task(self._run_dma(session, req), context=ctx)

    async def _run_dma(self, session: Session, req: pb.DmaRequest) -> None:
        reply = pb.DmaReply(id=req.id)
        try:
            space = self.machine.address_space(req.address_space)
            attrs = attrs_from_pb(req.attrs, "dma") if req.HasField("attrs") else MemTxAttrs()
            attrs = attrs._replace(requester_id=session.requester_id)
            op = req.WhichOneof("op")
            n = req.read if op == "read" else len(req.write)
            if n > self.max_access_bytes:
                raise RpcError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"DMA of {n} bytes exceeds --max-access-bytes",
                )
            view, t0 = space.current_map, time.monotonic_ns()
            waited = False
            if op == "write":
                w = space.dispatch_write(req.addr, req.write, attrs)
                if not isinstance(w, int):
                    waited, w = True, await w
                reply.result = w
            else:
                r = space.dispatch_read(req.addr, req.read, attrs)
                if type(r) is not ReadResult:
                    waited, r = True, await r  # type: ignore[misc]
                reply.data, reply.result = r[0], r[1]  # type: ignore[index]
            if self.tracer is not None and self.tracer.trace.active:
                now = time.monotonic_ns()
                self.tracer.publish(
                    [
                        Access(
                            space,
                            view,
                            req.addr,
                            n,
                            op == "write",
                            req.write if op == "write" else reply.data,
                            reply.result,
                            session.name,
                            attrs.requester_id,
                            now - t0 if waited else 0,
                            now,
                        )
                    ]
                )
        except Exception as e:
            status = status_of(e)
            log.warning(
                "device DMA refused", device=session.name, reason=status[1] if status else repr(e)
            )
            reply.result = MemTxResult.DECODE_ERROR
        session.send(pb.BusMessage(dma=reply))

    def _irq(self, session: Session, update: pb.IrqUpdate) -> None:
        line = update.line or "irq"
        if not NAME_RE.fullmatch(line):
            raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, f"irq line name {line!r}")
        name = f"{session.name}.{line}"
        if update.WhichOneof("op") == "pulse":
            self.irqs.pulse(name)
        else:
            self.irqs.set(name, update.level)

    # -- client RPCs --------------------------------------------------------------------------

    async def ListDevices(
        self, request: pb.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDevicesResponse:
        out = pb.ListDevicesResponse()
        for name in sorted({*self.sessions, *self.local}):
            s = self.sessions.get(name)
            if s is not None:
                out.devices.add(
                    name=name,
                    peer=s.peer,
                    regions=[b.region_id for b in s.bindings.values()],
                    accesses=s.counters["accesses"],
                    timeouts=s.counters["timeouts"],
                    dma=s.counters["dma"],
                )
            else:
                h = self.local[name]
                out.devices.add(
                    name=name,
                    regions=[h.region_id],
                    accesses=h.counters["accesses"],
                    dma=h.counters["dma"],
                    in_process=True,
                )
        return out

    async def ResetDevice(
        self, request: pb.ResetDeviceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResetDeviceResponse:
        timeout = (request.timeout_ms or 5000) / 1000.0
        local = self.local.get(request.name)
        try:
            if local is not None:
                await asyncio.wait_for(local.reset(), timeout)
                return pb.ResetDeviceResponse()
            session = self.sessions.get(request.name)
            if session is None:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND, f"no device named {request.name!r} is attached"
                )
            session._ids += 1  # type: ignore[union-attr]
            rid = session._ids  # type: ignore[union-attr]
            fut = asyncio.get_running_loop().create_future()
            session.resets[rid] = fut  # type: ignore[union-attr]
            session.send(pb.BusMessage(reset=pb.ResetRequest(id=rid)))  # type: ignore[union-attr]
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"device {request.name!r} did not confirm its reset within {timeout:g} s",
            )
        except RpcError as e:
            await context.abort(e.code, e.message)
        log.info("device reset", device=request.name)
        return pb.ResetDeviceResponse()

    async def GetIrqs(
        self, request: pb.GetIrqsRequest, context: grpc.aio.ServicerContext
    ) -> pb.IrqLines:
        return pb.IrqLines(
            lines=[
                pb.IrqLine(name=ln.name, level=ln.level, changes=ln.changes)
                for ln in self.irqs.select(request.lines)
            ]
        )

    async def WatchIrqs(
        self, request: pb.WatchIrqsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.IrqEvent]:
        patterns = list(request.lines)
        queue: asyncio.Queue[tuple[str, bool, int]] = asyncio.Queue(maxsize=100_000)

        def on_change(line: Any, now: int) -> None:
            if matches(line.name, patterns):
                try:
                    queue.put_nowait((line.name, line.level, now))
                except asyncio.QueueFull:
                    pass  # a watcher this far behind loses changes rather than slow the bus

        stop = self.irqs.watch(on_change)
        seq = 0  # numbered as delivered, so it increases by one per event
        try:
            now = time.monotonic_ns()
            for line in self.irqs.select(patterns):
                seq += 1
                yield pb.IrqEvent(
                    line=line.name, level=line.level, sequence=seq, timestamp_ns=now, snapshot=True
                )
            while not self.stopping.is_set():
                getter = asyncio.ensure_future(queue.get())
                await first_of(getter, self.stopping.wait())
                if not getter.done() or getter.cancelled():
                    break
                name, level, when = getter.result()
                seq += 1
                yield pb.IrqEvent(line=name, level=level, sequence=seq, timestamp_ns=when)
        finally:
            stop()


def _describe(b: Binding) -> pb.DeviceRegion:
    valid, impl, endianness = b.constraints
    native_big = b.session.service.machine.system.native_big
    big = endianness is Endianness.BIG or (endianness is Endianness.NATIVE and native_big)
    return pb.DeviceRegion(
        handle=b.handle,
        id=b.region_id,
        size=size_to_pb(b.mr.size),
        valid=bpb.AccessSpec(
            min=valid.min_access_size, max=valid.max_access_size, unaligned=valid.unaligned
        ),
        impl=bpb.AccessSpec(
            min=impl.min_access_size, max=impl.max_access_size, unaligned=impl.unaligned
        ),
        endianness=bpb.BIG if big else bpb.LITTLE,
        posted_writes=b.posted_writes,
        deadline_ms=round(b.deadline * 1000),
        romd=b.mr.kind is RegionKind.ROMD,
    )


def absent_memory(mr: MemoryRegion) -> bytearray:
    """Scratch memory for ``absent: ram`` (kept across detach/attach; regions are small)."""
    store = _ABSENT_MEMORY.get(mr)
    if store is None:
        store = _ABSENT_MEMORY[mr] = bytearray(min(mr.size, 1 << 24))
    return store


_ABSENT_MEMORY: dict[MemoryRegion, bytearray] = {}


# -- in-process devices ----------------------------------------------------------------------


def load_device_class(target: str) -> type:
    """The class MODULE:CLASS names."""
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import {module_name!r}: {e}") from None
    try:
        cls = getattr(module, cls_name)
    except AttributeError:
        raise ValueError(f"{module_name!r} has no {cls_name!r}") from None
    return cls


class LocalHost:
    """Runs a ``Device`` inside the server: its region's ops call the device directly, its DMA
    goes straight to the address spaces, its interrupt lines straight to the registry."""

    def __init__(
        self, service: DevicesService, name: str, region_id: str, spec: MmioSpec | RomdSpec
    ) -> None:
        self.service = service
        self.name = name
        self.region_id = region_id
        self.spec = spec
        self.identity = service.identity(name)
        self.counters: collections.Counter[str] = collections.Counter()
        assert isinstance(spec.device, InProcessDevice)
        cls = load_device_class(spec.device.class_)
        self.device = cls(**spec.device.args)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        from mmiobus.devices.device import RegionInfo

        mr = self.service.machine.regions[self.region_id]
        valid, impl = constraints(self.spec.valid), constraints(self.spec.impl)
        endianness = Endianness(self.spec.endianness)
        native_big = self.service.machine.system.native_big
        big = endianness is Endianness.BIG or (endianness is Endianness.NATIVE and native_big)
        info = RegionInfo(
            self.region_id,
            mr.size,
            "big" if big else "little",
            self.spec.posted_writes,
            mr.kind is RegionKind.ROMD,
        )
        device = self.device

        def read(offset: int, size: int, attrs: MemTxAttrs) -> Any:
            self.counters["accesses"] += 1
            return device._serve(info, offset, size, False, 0, attrs, None)

        def write(offset: int, size: int, value: int, attrs: MemTxAttrs) -> Any:
            self.counters["accesses"] += 1
            return device._serve(info, offset, size, True, value, attrs, None)

        mr.set_ops(
            MemoryRegionOps(
                read=read,
                write=write,
                endianness=endianness,
                valid=valid,
                impl=impl,
                owner=self.identity,
            )
        )
        self.service.served[mr] = self.name
        await device._attach(self, [info])
        log.info("in-process device started", device=self.name, region=self.region_id)

    async def stop(self) -> None:
        await self.device._detach()
        for t in list(self._tasks):
            t.cancel()

    async def reset(self) -> None:
        await self.device._reset()

    # The Host interface the Device SDK talks to.

    async def dma(
        self,
        address_space: str,
        addr: int,
        size: int | None,
        data: bytes | None,
        attrs: MemTxAttrs,
        on_behalf_of: int | None,
    ) -> tuple[bytes, MemTxResult]:
        """As a remote device's DMA: the device's requester id is stamped on it, the device is
        engaged (its own regions answer MEMTX_ACCESS_ERROR), and a refusal is a bus fault."""
        self.counters["dma"] += 1
        attrs = attrs._replace(requester_id=self.device.requester_id)
        token = set_engaged_owners(engaged_owners() | {id(self.identity)})
        try:
            try:
                space = self.service.machine.address_space(address_space)
            except NotFoundError as e:
                log.warning("device DMA refused", device=self.name, reason=str(e))
                return b"", MemTxResult.DECODE_ERROR
            view, t0 = space.current_map, time.monotonic_ns()
            waited = False
            if data is not None:
                w = space.dispatch_write(addr, data, attrs)
                if not isinstance(w, int):
                    waited, w = True, await w
                out = b"", MemTxResult(w)
            else:
                r = space.dispatch_read(addr, size or 0, attrs)
                if type(r) is not ReadResult:
                    waited, r = True, await r  # type: ignore[misc]
                out = r[0], r[1]  # type: ignore[assignment]
            tracer = self.service.tracer
            if tracer is not None and tracer.trace.active:
                now = time.monotonic_ns()
                n = len(data) if data is not None else (size or 0)
                shown = data if data is not None else out[0]
                tracer.publish(
                    [
                        Access(
                            space,
                            view,
                            addr,
                            n,
                            data is not None,
                            shown,
                            out[1],
                            self.name,
                            attrs.requester_id,
                            now - t0 if waited else 0,
                            now,
                        )
                    ]
                )
            return out
        finally:
            reset_engaged_owners(token)

    def set_irq(self, line: str, level: bool) -> None:
        self.service.irqs.set(f"{self.name}.{line}", level)

    def pulse_irq(self, line: str) -> None:
        self.service.irqs.pulse(f"{self.name}.{line}")

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task of the device, in a context of its own: not part of whatever
        access started it (so not in its re-entrancy chain)."""
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


__all__ = ["DevicesService", "LocalHost", "Session"]
