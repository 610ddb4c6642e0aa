"""The device's side of one Attach stream (``RemoteHost``): the ``Host`` a device sees while it
is attached, serving the bus's access requests in order, sending its DMA, region requests,
interrupt levels and answers. ``DeviceRunner`` (``runner``) opens the stream and reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.wire import attrs_from_pb, set_attrs, status_code

from .device import Device
from .host import DmaRequest, RegionInfo

if TYPE_CHECKING:
    from .runner import DeviceRunner

log = structlog.get_logger("mmiobus.device")


class RegionRefused(Exception):
    """The bus refused a claim or registration (not worth retrying)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


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
