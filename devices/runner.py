"""Running a ``Device`` out of process: one Attach stream to the bus, reconnecting with back-off.

    runner = DeviceRunner(MyDevice(), "127.0.0.1:7170", name="uart0", claims=["uart0"])
    await runner.run()

Access requests are served in the order the bus sent them; whatever answers are ready when the
queue runs dry go back as one message. DMA replies, region replies and resets arrive on the same
stream, so a device waiting for its DMA still answers MMIO.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import structlog
from mmiobus.credentials import Credentials
from mmiobus.endpoints import open_channel, unreachable
from mmiobus.v1 import bus_pb2 as bpb
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.v1 import devices_pb2_grpc
from mmiobus.wire import (
    CallStatus,
    byteorder,
    endianness_to_pb,
    size_from_pb,
    size_to_pb,
)

from .device import Device
from .host import RegionInfo
from .session import RegionRefused, RemoteHost

log = structlog.get_logger("mmiobus.device")

PROTOCOL = 1


class Refused(Exception):
    """The bus refused the device itself (credentials, name taken, protocol)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Placement:
    """Where to map a region the device registers itself."""

    addr: int
    address_space: str = ""
    container: str | None = None
    priority: int = 0
    region_id: str | None = None
    deadline_ms: int = 0


# Worth trying again: the bus is away or restarting, or still holds our previous session
# (a device that restarts quickly may find its old self not yet gone).
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


# How long a device name another session holds is retried before the runner gives up.
NAME_GRACE = 5.0
_jitter = random.Random()


def jittered(delay: float) -> float:
    """A wait of between half ``delay`` and ``delay``, at random."""
    return delay * _jitter.uniform(0.5, 1.0)


class DeviceRunner:
    """Serves ``device`` on the bus at ``server`` until cancelled; see the module docstring."""

    def __init__(
        self,
        device: Device,
        server: str,
        *,
        name: str,
        claims: list[str] | None = None,
        placement: Placement | None = None,
        token: str = "",
        reconnect: bool = True,
        on_ready: Callable[[DeviceRunner, list[RegionInfo]], None] | None = None,
        name_grace: float = NAME_GRACE,
        credentials: Credentials | None = None,
    ) -> None:
        if not claims and placement is None:
            raise ValueError("a device needs a region: claim one, or place one with --at")
        self.device = device
        self.server = server
        self.name = name
        self.claims = list(claims or [])
        self.placement = placement
        # ``credentials`` default to the environment's; ``token`` (also sent in hello, for a
        # bus started with --device-token) replaces theirs.
        creds = Credentials.from_env() if credentials is None else credentials
        self.credentials = creds.with_token(token) if token else creds
        self.token = self.credentials.token
        self.reconnect = reconnect
        self.on_ready = on_ready
        self.name_grace = name_grace
        self.sessions = 0

    async def run(self) -> None:
        """Attach, serve, and after losing the bus attach again (after 0.1 s, doubling to 5 s,
        each wait jittered so that devices restarted together do not call back together).

        A refusal that trying again cannot mend ends it: bad credentials or a bad request
        (``Refused``, at once), a region refused (``RegionRefused``), and a name another device
        holds for longer than ``name_grace`` seconds (``Refused``; until then it is retried,
        with or without ``reconnect``: a device that restarts quickly may find its previous
        session not yet gone). Without ``reconnect``, a bus that cannot be reached raises its
        ``grpc.RpcError`` and a bus that goes away ends the run."""
        delay = 0.1
        loop = asyncio.get_running_loop()
        taken_since: float | None = None
        while True:
            attached = False
            try:
                attached = await self._session()
                if not self.reconnect:
                    return
                log.warning("bus went away; reconnecting", device=self.name, server=self.server)
            except (Refused, RegionRefused):
                raise
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.ALREADY_EXISTS:
                    taken_since = loop.time() if taken_since is None else taken_since
                    if loop.time() - taken_since >= self.name_grace:
                        raise Refused(e.code(), e.details() or "the name is taken") from None
                    log.info(
                        "device name taken; retrying while a previous session ends",
                        device=self.name,
                        server=self.server,
                        retry_in=round(delay, 2),
                    )
                else:
                    if not self.reconnect:
                        raise
                    if e.code() == grpc.StatusCode.UNAVAILABLE:
                        why = unreachable(self.server, e.details() or "")
                    else:
                        why = f"{e.code().name if e.code() else '?'}: {e.details()}"
                    log.warning(
                        "cannot reach the bus; retrying",
                        device=self.name,
                        reason=why,
                        retry_in=round(delay, 2),
                    )
            if attached:
                delay = 0.1
                taken_since = None
            await asyncio.sleep(jittered(delay))
            delay = min(delay * 2, 5.0)

    async def _session(self) -> bool:
        async with open_channel(self.server, credentials=self.credentials) as channel:
            call = devices_pb2_grpc.DevicesStub(channel).Attach()
            host = RemoteHost(self, call)
            await call.write(
                pb.DeviceMessage(
                    hello=pb.Hello(
                        name=self.name,
                        min_protocol=PROTOCOL,
                        max_protocol=PROTOCOL,
                        token=self.token,
                        requester_id=self.device.requester_id,
                    )
                )
            )
            try:
                first = await call.read()
            except grpc.RpcError as e:
                if e.code() in _RETRYABLE:
                    raise
                raise Refused(e.code(), e.details() or e.code().name) from None
            if first is grpc.aio.EOF or first.WhichOneof("msg") != "welcome":
                code = await call.code()
                details = await call.details()
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    raise CallStatus(code, details)
                raise Refused(code, details)
            tasks = [asyncio.create_task(host.writer(), name=f"{self.name}-writer")]
            reader = asyncio.create_task(host.reader(), name=f"{self.name}-reader")
            attached = False
            try:
                regions = await self._regions(host)
                self.sessions += 1
                attached = True
                await self.device.bind(host, regions)
                if self.on_ready is not None:
                    self.on_ready(self, regions)
                await reader
            finally:
                reader.cancel()
                for t in [*tasks, *host.tasks, *host.running]:
                    t.cancel()
                for fut in host.waiting.values():
                    if not fut.done():
                        fut.cancel()
                if self.device.attached:
                    await self.device.unbind()
            return attached

    async def _regions(self, host: RemoteHost) -> list[RegionInfo]:
        requests = [pb.RegionRequest(claim=pb.ClaimRegion(region=r)) for r in self.claims]
        if self.placement is not None:
            p = self.placement
            reg = self._registration(p.region_id or self.name, self.device.size, p.addr)
            reg.priority, reg.deadline_ms = p.priority, p.deadline_ms
            if p.container:
                reg.container = p.container
            else:
                reg.address_space = p.address_space
            requests.append(pb.RegionRequest(register=reg))
        return [await self._request(host, req) for req in requests]

    def _registration(self, region_id: str, size: int, addr: int) -> pb.RegisterRegion:
        """A new region at ``addr`` served by the device, with the device's access rules."""
        d = self.device
        return pb.RegisterRegion(
            id=region_id,
            size=size_to_pb(size),
            valid=bpb.AccessSpec(min=d.valid[0], max=d.valid[1], unaligned=d.unaligned),
            impl=bpb.AccessSpec(min=d.impl[0], max=d.impl[1], unaligned=d.unaligned),
            endianness=endianness_to_pb(d.endianness),
            posted_writes=d.posted_writes,
            addr=addr,
        )

    async def _request(self, host: RemoteHost, req: pb.RegionRequest) -> RegionInfo:
        """Ask for a region (``RegionRefused`` if the bus says no); what the device serves."""
        reply = await host.request_region(req)
        r = reply.region
        info = RegionInfo(
            r.id, size_from_pb(r.size), byteorder(r.endianness), r.posted_writes, r.romd
        )
        host.handles[reply.handle] = info
        return info
