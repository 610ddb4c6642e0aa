"""The ``mmiobus.v1.Devices`` service: device sessions over ``Attach``, and what clients ask
about devices (``ListDevices``, ``ResetDevice``). Interrupt lines are in ``irqs.py``.

This module speaks the protocol — hello and welcome, message dispatch, region replies — and
leaves the device domain (claims, registrations, pending accesses, DMA) to the core. What the
device's identity allows (``mmiobus.server.authz``) is checked here: its name at hello, each
claim and registration, its DMA (reads need the read role, writes the write role).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator

import grpc
import structlog
from mmiobus.affinity import process_pin
from mmiobus.devices.host import DmaRequest, byteorder_of
from mmiobus.memory.access import MEMTXATTRS_UNSPECIFIED, MemTxResult
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.wire import (
    access_spec_to_pb,
    attrs_from_pb,
    endianness_to_pb,
    size_from_pb,
    size_to_pb,
    status_value,
)

from .. import authz, peer_log
from ..auth import EVERYONE, Identity, Role
from ..core import BusCore, Initiator
from ..devices.registry import check_name
from ..devices.remote import Binding, RemoteSession
from ..errors import Conflict, InvalidRequest, Unauthenticated
from ..ordered import OrderedAccesses
from .convert import registered_region_spec
from .status import abort, answers_errors, status_of, status_or_internal

log = structlog.get_logger("mmiobus.devices")

PROTOCOL_MIN = PROTOCOL_MAX = 1

# How a DMA request wants its answer: (its id, posted, came in a batch).
ReplyTo = tuple[int, bool, bool]


class DeviceService:
    """``Attach``, ``ListDevices`` and ``ResetDevice``."""

    def __init__(self, core: BusCore) -> None:
        self.core = core
        self.registry = core.devices

    # -- Attach -------------------------------------------------------------------------------

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
            session, who = self._hello(first, peer)
        except Exception as e:
            peer_log.warn("device refused", peer, reason=str(e))
            await abort(context, e)
            return
        core = self.core
        yield pb.BusMessage(
            welcome=pb.Welcome(
                protocol_version=PROTOCOL_MAX,
                bus_version=core.version,
                endianness=endianness_to_pb(core.machine.system.endianness),
            )
        )
        failure: list[BaseException] = []
        reader = asyncio.create_task(
            self._read(session, it, failure, who), name=f"device-{session.name}"
        )
        # A CPU in its own process (it attaches under its name): every access it makes crosses
        # this process's threads, so they share one core while it is attached, as for a CPU
        # run here (mmiobus.affinity; serve --no-pin leaves them be).
        pinned = core.config.pin_cpus and session.name in core.machine.cpus
        if pinned:
            log.info("CPU attached: the server's threads share one core while it is",
                     cpu=session.name, core=process_pin.acquire())  # fmt: skip
        try:
            while (message := await session.outbox.next()) is not None:
                yield message
        finally:
            reader.cancel()
            session.close()
            if pinned:
                process_pin.release()
        failure[:0] = session.failures  # the bus ended it (the device stopped reading)
        if failure:
            code, reason = status_or_internal(failure[0])
            peer_log.warn(
                "device stream closed", peer, session.name, device=session.name, reason=reason
            )
            await context.abort(code, reason)

    def _hello(self, message: pb.DeviceMessage, peer: str) -> tuple[RemoteSession, Identity]:
        if message.WhichOneof("msg") != "hello":
            raise InvalidRequest("the first message must be hello")
        hello = message.hello
        tokens = self.core.config.device_tokens
        given = hello.token.encode()
        if tokens and not any([hmac.compare_digest(given, t.encode()) for t in tokens]):
            raise Unauthenticated(
                "device credentials are missing or wrong (the bus was started with "
                "--device-token; pass the same token to the device)"
            )
        who = authz.device_identity(self.core, hello.token)
        authz.check_device_name(who, hello.name)
        low, high = hello.min_protocol or 1, hello.max_protocol or hello.min_protocol or 1
        if high < PROTOCOL_MIN or low > PROTOCOL_MAX or low > high:
            raise Conflict(
                f"the device speaks protocol {low}..{high}, this bus speaks "
                f"{PROTOCOL_MIN}..{PROTOCOL_MAX}"
            )
        session = self.registry.admit(hello.name, peer, hello.requester_id)
        initiator = Initiator(session.name, session.requester_id, session.identity)
        session.dma = OrderedAccesses(self.core, initiator)
        if who is not EVERYONE:
            log.info("device authenticated", device=session.name, identity=who.name)
        return session, who

    async def _read(
        self,
        session: RemoteSession,
        it: AsyncIterator[pb.DeviceMessage],
        failure: list[BaseException],
        who: Identity,
    ) -> None:
        """Serve what the device sends until its stream ends; a message that breaks the
        protocol ends the session with its status (kept in ``failure``)."""
        # DMA the identity may not make answers MEMTX_ACCESS_ERROR, as an IOMMU would.
        may = (who.has(Role.READ), who.has(Role.WRITE))
        refused_dma = said = False
        try:
            async for message in it:
                kind = message.WhichOneof("msg")
                if kind == "replies":
                    session.answer(message.replies)
                elif kind == "region":
                    self._region(session, message.region, who)
                elif kind == "dma":
                    refused_dma |= not self._dma(session, message.dma, False, may)
                elif kind == "dmas":
                    for req in message.dmas.requests:
                        refused_dma |= not self._dma(session, req, True, may)
                elif kind == "irq":
                    self._irq(session, message.irq)
                elif kind == "reset_done":
                    session.reset_done(message.reset_done.id)
                elif kind == "share":
                    self._share(session, message.share, who)
                elif kind == "follow_irqs":
                    authz.require(who, Role.READ, "following interrupt lines")
                    session.follow_irqs(self.core.irqs, list(message.follow_irqs.lines))
                elif kind == "hello":
                    raise InvalidRequest("hello sent twice")
                else:
                    raise InvalidRequest("an empty message (set one field)")
                if refused_dma and not said:
                    said = True
                    log.warning(
                        "device DMA refused: its identity lacks the role (answered "
                        "MEMTX_ACCESS_ERROR; said once per session)",
                        device=session.name,
                        identity=who.name,
                        roles=who.describe_roles(),
                    )
        except grpc.RpcError:
            pass  # the stream broke: close() fails what is pending
        except grpc.aio.AbortError:
            pass
        except Exception as e:
            failure.append(e)
        session.close()

    # -- what the device sends ----------------------------------------------------------------

    def _region(self, session: RemoteSession, req: pb.RegionRequest, who: Identity) -> None:
        op = req.WhichOneof("op")
        try:
            if op == "claim":
                authz.check_claim(who, req.claim.region)
                binding = self.registry.claim(session, req.claim.region)
            elif op == "register":
                binding = self._register(session, req.register, who)
            elif op == "unmap":
                self.registry.unmap(session, req.unmap.handle)
                session.outbox.send(pb.BusMessage(region=pb.RegionReply(request_id=req.request_id)))
                return
            else:
                raise InvalidRequest("empty region request")
        except Exception as e:
            status = status_of(e)
            if status is None:
                raise
            reply = pb.RegionReply(
                request_id=req.request_id, code=status_value(status[0]), message=status[1]
            )
            session.outbox.send(pb.BusMessage(region=reply))
            return
        reply = pb.RegionReply(
            request_id=req.request_id, handle=binding.handle, region=self._describe(binding)
        )
        session.outbox.send(pb.BusMessage(region=reply))

    def _register(self, session: RemoteSession, r: pb.RegisterRegion, who: Identity) -> Binding:
        machine = self.core.machine
        region_id = r.id or self.registry.fresh_region_id(session.name)
        spec = registered_region_spec(r, region_id, session.name)
        if r.WhichOneof("parent") == "container":
            parent = machine.region(r.container)
            space, container = "", r.container
        else:
            as_ = self.core.space(r.address_space)
            parent = as_.root
            space, container = machine.space_id(as_), ""
        authz.check_register(who, space, container, r.addr, size_from_pb(r.size), region_id)
        return self.registry.register(session, spec, parent, r.addr, r.priority)

    def _describe(self, b: Binding) -> pb.DeviceRegion:
        native_big = self.core.machine.system.native_big
        return pb.DeviceRegion(
            handle=b.handle,
            id=b.region_id,
            size=size_to_pb(b.mr.size),
            valid=access_spec_to_pb(b.valid),
            impl=access_spec_to_pb(b.impl),
            endianness=endianness_to_pb(byteorder_of(b.endianness, native_big)),
            posted_writes=b.posted_writes,
            deadline_ms=round(b.deadline * 1000),
            romd=b.mr.rom_device,
        )

    def _dma(
        self, session: RemoteSession, req: pb.DmaRequest, batched: bool, may: tuple[bool, bool]
    ) -> bool:
        """Queue a DMA request (answered as it came: alone, or with its batch's others); False
        when ``may`` (may read, may write) refuses it, answered MEMTX_ACCESS_ERROR."""
        session.counters["dma"] += 1
        reply_to = (req.id, req.posted, batched)
        op = req.WhichOneof("op")
        if not may[op == "write"]:
            self._dma_reply(session, reply_to, b"", MemTxResult.ACCESS_ERROR)
            return False
        chain = session.chain_of(req.on_behalf_of)
        try:
            attrs = (
                attrs_from_pb(req.attrs, "dma") if req.HasField("attrs") else MEMTXATTRS_UNSPECIFIED
            )
        except Exception as e:
            log.warning("device DMA refused", device=session.name, reason=str(e))
            self._dma_reply(session, reply_to, b"", MemTxResult.DECODE_ERROR)
            return True
        request = DmaRequest(
            req.address_space,
            req.addr,
            len(req.write) if op == "write" else req.read,
            req.write if op == "write" else None,
            attrs,
        )
        session.dma.submit(
            request, chain, lambda data, result: self._dma_reply(session, reply_to, data, result)
        )
        return True

    @staticmethod
    def _dma_reply(session: RemoteSession, reply_to: ReplyTo, data: bytes, result: int) -> None:
        dma_id, posted, batched = reply_to
        if posted and not result:
            return  # a posted write that did what it should needs no answer
        reply = pb.DmaReply(id=dma_id, data=data, result=result)
        if batched:
            session.outbox.send_dma_reply(reply)
        else:
            session.outbox.send(pb.BusMessage(dma=reply))

    def _share(self, session: RemoteSession, req: pb.ShareMemory, who: Identity) -> None:
        reply = pb.SharedMemory(request_id=req.request_id)
        try:
            # The mapping reads and writes the region's bytes directly.
            authz.require(who, Role.READ, "sharing a region's memory")
            authz.require(who, Role.WRITE, "sharing a region's memory")
            mr = self.core.machine.region(req.region)
            shared = self.core.sharing.share(mr, req.region)
        except Exception as e:
            status = status_of(e)
            if status is None:
                raise
            reply.code, reply.message = status_value(status[0]), status[1]
        else:
            reply.path, reply.size = shared.path, shared.size
            reply.inode, reply.device = shared.inode, shared.device
            log.info("region shared", device=session.name, region=req.region, path=shared.path)
        session.outbox.send(pb.BusMessage(shared=reply))

    def _irq(self, session: RemoteSession, update: pb.IrqUpdate) -> None:
        line = update.line or "irq"
        check_name(line, "irq line name")
        name = f"{session.name}.{line}"
        if update.WhichOneof("op") == "pulse":
            self.core.irqs.pulse(name)
        else:
            self.core.irqs.set(name, update.level)

    # -- client RPCs --------------------------------------------------------------------------

    @answers_errors
    async def ListDevices(
        self, request: pb.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDevicesResponse:
        out = pb.ListDevicesResponse()
        peers = authz.caller(self.core).has(Role.ADMIN)  # where devices run is for admins
        for d in self.registry.attached():
            c = d.counters
            out.devices.add(
                name=d.name,
                peer=d.peer if peers else "",
                regions=d.region_ids,
                accesses=c["accesses"],
                timeouts=c["timeouts"],
                dma=c["dma"],
                in_process=d.in_process,
            )
        return out

    async def ResetDevice(
        self, request: pb.ResetDeviceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResetDeviceResponse:
        timeout = (request.timeout_ms or 5000) / 1000.0
        try:
            await self.registry.get(request.name).reset(timeout)
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"device {request.name!r} did not confirm its reset within {timeout:g} s",
            )
        except Exception as e:
            await abort(context, e)
        log.info("device reset", device=request.name)
        return pb.ResetDeviceResponse()
