"""Running a ``Device`` out of process: one Attach stream to the bus, reconnecting with back-off.

    runner = DeviceRunner(MyDevice(), "127.0.0.1:7170", name="uart0", claims=["uart0"])
    await runner.run()

Access requests are served in the order the bus sent them; whatever answers are ready when the
queue runs dry go back as one message. DMA replies, region replies and resets arrive on the same
stream, so a device waiting for its DMA still answers MMIO.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from mmiobus.credentials import Credentials
from mmiobus.endpoints import open_channel
from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.v1 import bus_pb2 as bpb
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.v1 import devices_pb2_grpc
from mmiobus.wire import (
    CallStatus,
    attrs_from_pb,
    byteorder,
    endianness_to_pb,
    set_attrs,
    size_from_pb,
    size_to_pb,
    status_code,
)

from .device import Device
from .host import DmaRequest, RegionInfo

log = structlog.get_logger("mmiobus.device")

PROTOCOL = 1


class RegionRefused(Exception):
    """The bus refused a claim or registration (not worth retrying)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


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


class RemoteHost:
    """The ``Host`` a device sees while attached over a stream."""

    def __init__(self, runner: DeviceRunner, call: Any) -> None:
        self.runner = runner
        self.name = runner.name
        self.call = call
        self.outbox: asyncio.Queue[pb.DeviceMessage] = asyncio.Queue()
        self.write_lock = asyncio.Lock()  # one write at a time: the writer's, or the reader's
        self.queue: collections.deque[Any] = collections.deque()
        self.resetting = False  # a reset is under way: requests after it wait in the queue
        self.handles: dict[int, RegionInfo] = {}
        self.waiting: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.running: set[asyncio.Task[Any]] = set()  # handlers that suspended
        self.ready: list[pb.AccessReply] = []  # answers not yet sent
        self._flush_scheduled = False
        self.dma_callbacks: dict[int, Callable[[pb.DmaReply], None]] = {}
        self._dma_batch: list[pb.DmaRequest] = []
        self.on_irq_levels: Callable[[list[pb.IrqLine]], None] | None = None

    # -- Host interface -----------------------------------------------------------------------

    async def dma(self, request: DmaRequest) -> tuple[bytes, MemTxResult]:
        rid = next(self.ids)
        req = pb.DmaRequest(
            id=rid,
            address_space=request.address_space,
            addr=request.addr,
            on_behalf_of=request.on_behalf_of or 0,
        )
        if request.data is not None:
            req.write = request.data
        else:
            req.read = request.size
        set_attrs(req, request.attrs)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[("dma", rid)] = fut
        self.outbox.put_nowait(pb.DeviceMessage(dma=req))
        reply = await fut
        return reply.data, MemTxResult(reply.result & 7)

    def set_irq(self, line: str, level: bool) -> None:
        self.outbox.put_nowait(pb.DeviceMessage(irq=pb.IrqUpdate(line=line, level=level)))

    def pulse_irq(self, line: str) -> None:
        self.outbox.put_nowait(pb.DeviceMessage(irq=pb.IrqUpdate(line=line, pulse=True)))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        # A context of its own: a background task is not part of the access that started it.
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("device task failed", device=self.name, error=repr(task.exception()))

    # -- for front-ends (CPUs): DMA without a task per access, shared RAM, interrupt inputs ---

    def send_dma(self, req: pb.DmaRequest, on_reply: Callable[[pb.DmaReply], None]) -> None:
        """Send a prepared DMA request (its id is set here unless the caller set one);
        ``on_reply`` gets the answer, on this loop (a posted write is answered only if it
        fails). The bus carries out a session's DMA in order and answers in order. Requests
        sent in one turn of the loop travel in one message."""
        if not req.id:
            req.id = next(self.ids)
        self.dma_callbacks[req.id] = on_reply
        if not self._dma_batch:
            asyncio.get_running_loop().call_soon(self._send_dma_batch)
        self._dma_batch.append(req)

    def _send_dma_batch(self) -> None:
        batch, self._dma_batch = self._dma_batch, []
        self.outbox.put_nowait(pb.DeviceMessage(dmas=pb.DmaRequests(requests=batch)))

    async def share_memory(self, region: str) -> pb.SharedMemory:
        """Where the bus's host maps RAM region ``region`` (``RegionRefused`` if it cannot)."""
        rid = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[("shared", rid)] = fut
        self.outbox.put_nowait(
            pb.DeviceMessage(share=pb.ShareMemory(request_id=rid, region=region))
        )
        reply: pb.SharedMemory = await fut
        if reply.code:
            raise RegionRefused(status_code(reply.code), reply.message)
        return reply

    def follow_irqs(
        self, patterns: list[str], on_levels: Callable[[list[pb.IrqLine]], None]
    ) -> None:
        """Have the bus send the levels of the lines matching ``patterns`` (now, then every
        change) to ``on_levels``, on this loop."""
        self.on_irq_levels = on_levels
        self.outbox.put_nowait(pb.DeviceMessage(follow_irqs=pb.FollowIrqs(lines=patterns)))

    # -- the stream ---------------------------------------------------------------------------

    async def request_region(self, req: pb.RegionRequest) -> pb.RegionReply:
        req.request_id = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[("region", req.request_id)] = fut
        self.outbox.put_nowait(pb.DeviceMessage(region=req))
        reply: pb.RegionReply = await fut
        if reply.code:
            raise RegionRefused(status_code(reply.code), reply.message)
        return reply

    async def writer(self) -> None:
        while True:
            message = await self.outbox.get()
            async with self.write_lock:
                await self.call.write(message)

    async def reader(self) -> None:
        # read() rather than `async for`: the welcome was read with read(), and grpc does not
        # allow mixing the two on one call.
        while (message := await self.call.read()) is not grpc.aio.EOF:
            kind = message.WhichOneof("msg")
            if kind == "accesses":
                self.queue.extend(message.accesses.accesses)
                answers = self.pump(direct=True)
                if answers is not None:  # nothing else to send first: no need for the writer
                    async with self.write_lock:
                        await self.call.write(answers)
            elif kind == "dma":
                callback = self.dma_callbacks.pop(message.dma.id, None)
                if callback is not None:
                    callback(message.dma)
                    continue
                fut = self.waiting.pop(("dma", message.dma.id), None)
                if fut is not None and not fut.done():
                    fut.set_result(message.dma)
            elif kind == "dmas":
                for reply in message.dmas.replies:
                    callback = self.dma_callbacks.pop(reply.id, None)
                    if callback is not None:
                        callback(reply)
            elif kind == "irqs":
                if self.on_irq_levels is not None:
                    self.on_irq_levels(list(message.irqs.lines))
            elif kind == "shared":
                fut = self.waiting.pop(("shared", message.shared.request_id), None)
                if fut is not None and not fut.done():
                    fut.set_result(message.shared)
            elif kind == "region":
                fut = self.waiting.pop(("region", message.region.request_id), None)
                if fut is not None and not fut.done():
                    fut.set_result(message.region)
            elif kind == "reset":
                self.queue.append(message.reset)
                self.pump()

    def pump(self, direct: bool = False) -> pb.DeviceMessage | None:
        """Start serving the queued requests in the order they came, as soon as they arrive. A
        handler that suspends (an async handler awaiting DMA, say) does not hold up the next
        request, exactly as when the device runs in the server. Answers that are ready together
        go back as one message. A reset waits for the requests before it to finish, and the
        requests after it wait for the reset. With ``direct``, the answers are returned for the
        caller to send if nothing is waiting to be sent before them."""
        if self.resetting:
            return None
        device = self.runner.device
        loop = asyncio.get_running_loop()
        while self.queue:
            item = self.queue.popleft()
            if isinstance(item, pb.ResetRequest):
                self.resetting = True
                self.flush()
                self.spawn(self._reset(item.id))
                return None
            out = self._start(device, item)
            if isinstance(out, pb.AccessReply):
                self.ready.append(out)
            elif out is not None:
                task = loop.create_task(out)
                self.running.add(task)
                task.add_done_callback(self._finished)
        return self.flush(direct)

    async def _reset(self, reset_id: int) -> None:
        try:
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)
            self.flush()
            try:
                await self.runner.device.perform_reset()
            except Exception:
                log.exception("device reset failed", device=self.name)
            self.outbox.put_nowait(pb.DeviceMessage(reset_done=pb.ResetDone(id=reset_id)))
        finally:
            self.resetting = False
        self.pump()

    def _finished(self, task: asyncio.Task[pb.AccessReply | None]) -> None:
        self.running.discard(task)
        if task.cancelled():
            return
        reply = task.result()
        if reply is not None:
            self.ready.append(reply)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)

    def flush(self, direct: bool = False) -> pb.DeviceMessage | None:
        """Send the answers that are ready, in one message (with ``direct``, return it instead
        when nothing is queued or being written before it)."""
        self._flush_scheduled = False
        if not self.ready:
            return None
        replies, self.ready = self.ready, []
        message = pb.DeviceMessage(replies=pb.AccessReplies(replies=replies))
        if direct and self.outbox.empty() and not self.write_lock.locked():
            return message
        self.outbox.put_nowait(message)
        return None

    def _start(self, device: Device, access: pb.Access) -> Any:
        """An access's answer (None if posted), or a coroutine that will give it."""
        info = self.handles.get(access.handle)
        if info is None:
            return _reply(access, 0, MemTxResult.DECODE_ERROR)
        attrs = attrs_from_pb(access.attrs) if access.HasField("attrs") else _NO_ATTRS
        try:
            out = device.serve(
                info, access.offset, access.size, access.write, access.value, attrs, access.id
            )
        except Exception:
            self._failed(access)
            return _reply(access, 0, MemTxResult.ERROR)
        if out is not None and hasattr(out, "__await__"):
            return self._await(access, out)
        return _answer(access, out)

    async def _await(self, access: pb.Access, pending: Any) -> pb.AccessReply | None:
        try:
            out = await pending
        except Exception:
            self._failed(access)
            return _reply(access, 0, MemTxResult.ERROR)
        return _answer(access, out)

    def _failed(self, access: pb.Access) -> None:
        log.exception(
            "device handler failed",
            device=self.name,
            offset=access.offset,
            size=access.size,
            write=access.write,
        )


_NO_ATTRS = MemTxAttrs()


def _reply(access: pb.Access, value: int, result: int) -> pb.AccessReply | None:
    if access.posted:
        return None
    return pb.AccessReply(id=access.id, value=value, result=result)


def _answer(access: pb.Access, out: Any) -> pb.AccessReply | None:
    """The reply to ``access`` from ``Device.serve``'s answer (already normalised there)."""
    if access.write:
        return _reply(access, 0, out or 0)
    if isinstance(out, tuple):
        return _reply(access, out[0], out[1])
    return _reply(access, out, 0)


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
                    log.warning(
                        "cannot reach the bus; retrying",
                        device=self.name,
                        server=self.server,
                        status=e.code().name if e.code() else "?",
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
            p, d = self.placement, self.device
            reg = pb.RegisterRegion(
                id=p.region_id or self.name,
                size=size_to_pb(d.size),
                valid=bpb.AccessSpec(min=d.valid[0], max=d.valid[1], unaligned=d.unaligned),
                impl=bpb.AccessSpec(min=d.impl[0], max=d.impl[1], unaligned=d.unaligned),
                endianness=endianness_to_pb(d.endianness),
                posted_writes=d.posted_writes,
                addr=p.addr,
                priority=p.priority,
                deadline_ms=p.deadline_ms,
            )
            if p.container:
                reg.container = p.container
            else:
                reg.address_space = p.address_space
            requests.append(pb.RegionRequest(register=reg))
        regions = []
        for req in requests:
            reply = await host.request_region(req)
            r = reply.region
            info = RegionInfo(
                r.id, size_from_pb(r.size), byteorder(r.endianness), r.posted_writes, r.romd
            )
            host.handles[reply.handle] = info
            regions.append(info)
        return regions
