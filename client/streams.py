"""Pipelined accesses on one ``RwStream``: `AsyncStream` (asyncio futures) and its blocking face
`Stream` (``concurrent.futures`` futures), sharing ``read``/``write`` (``StreamAccesses``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
from typing import TYPE_CHECKING, Any

import grpc
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.wire import CallStatus

from .core import StreamAccesses, outcome, split_batches
from .errors import BusError, from_rpc_error
from .loopthread import LoopThread

if TYPE_CHECKING:
    from .aio import AsyncBus

_Pending = tuple[pb.RwRequest, "asyncio.Future[Any]", bool]


class AsyncStream(StreamAccesses["asyncio.Future[Any]"]):
    """Pipelined accesses on one RwStream.

    ``read``/``write`` return futures at once. One pump sends everything that has queued up
    as one message (within the server's limits), reads the answer, and repeats: many accesses
    in flight cost few messages, and with one message out at a time neither side can block the
    other on flow control. Accesses run in the order they were issued.
    """

    def __init__(self, bus: AsyncBus) -> None:
        super().__init__(bus.requests)
        self.bus = bus
        self._ids = itertools.count(1)
        self._call: Any = None
        self._queue: list[_Pending] = []
        self._waiting: list[_Pending] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._pump_task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def __aenter__(self) -> AsyncStream:
        self._call = self.bus.stub.RwStream()
        self._pump_task = asyncio.create_task(self._pump(), name="mmiobus-stream")
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        await self.close(raise_error=exc_type is None)

    def submit(self, req: pb.RwRequest, check: bool = True) -> asyncio.Future[Any]:
        """Queue a prepared access (its id is set here); the future resolves to its outcome."""
        req.id = next(self._ids)
        if self._error is not None:
            raise self._error
        if self._closing or self._call is None:
            raise BusError("the stream is closed (use it inside `async with bus.stream()`)")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((req, fut, check))
        self._wake.set()
        return fut

    async def _pump(self) -> None:
        call = self._call
        limits = self.bus.info.limits
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                chunk = split_batches([q[0] for q in self._queue], limits)[0]
                self._waiting, self._queue = self._queue[: len(chunk)], self._queue[len(chunk) :]
                await call.write(pb.RwStreamRequest(accesses=chunk))
                message = await call.read()
                if message is grpc.aio.EOF:
                    raise BusError("the server ended the stream before answering every access")
                if len(message.results) != len(self._waiting):
                    raise BusError("the server's answer does not match the accesses sent")
                for (req, fut, check), resp in zip(self._waiting, message.results, strict=True):
                    if not fut.done():
                        try:
                            fut.set_result(outcome(req, resp, check))
                        except BusError as e:
                            fut.set_exception(e)
                self._waiting = []
            await call.done_writing()
            if await call.code() != grpc.StatusCode.OK:
                self._fail(await self._status())
        except (grpc.RpcError, asyncio.InvalidStateError):
            # The server ended the call: report its status, not the failed write or read.
            self._fail(await self._status())
        except Exception as e:
            self._fail(e)

    async def _status(self) -> BaseException:
        call = self._call
        try:
            code, details = await call.code(), await call.details()
        except Exception as e:  # pragma: no cover - the channel itself is gone
            return BusError(f"the stream to {self.bus.address} broke: {e}")
        return from_rpc_error(CallStatus(code, details), self.bus.address)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        for _req, fut, _check in itertools.chain(self._waiting, self._queue):
            if not fut.done():
                fut.set_exception(error)
        self._waiting = []
        self._queue = []

    async def flush(self) -> None:
        """Wait until every access issued so far has its answer."""
        pending = [f for _r, f, _c in itertools.chain(self._waiting, self._queue)]
        if pending:
            await asyncio.wait(pending)

    async def close(self, raise_error: bool = True) -> None:
        """Finish the accesses in flight, then end the stream (raising what broke it, if
        something did and ``raise_error``)."""
        if self._call is None:
            return
        try:
            await self.flush()
        finally:
            self._closing = True
            self._wake.set()
            if self._pump_task is not None:
                await asyncio.gather(self._pump_task, return_exceptions=True)
            self._call = None
        if raise_error and self._error is not None:
            raise self._error


class Stream(StreamAccesses["concurrent.futures.Future[Any]"]):
    """The blocking face of ``AsyncStream``: ``read``/``write`` return
    ``concurrent.futures.Future`` objects at once; accesses are pipelined in issue order.
    Made by ``Bus.stream()``; use it as ``with bus.stream() as s: ...``."""

    def __init__(self, bus: AsyncBus, loop: LoopThread) -> None:
        super().__init__(bus.requests)
        self._async_bus = bus
        self._loop = loop
        self._stream: AsyncStream | None = None

    def __enter__(self) -> Stream:
        self._stream = self._loop.run(self._async_bus.stream().__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, req: pb.RwRequest, check: bool = True) -> concurrent.futures.Future[Any]:
        """Queue the access on the loop thread without waiting; the returned future completes
        when its answer arrives (answers arrive, and futures complete, in issue order)."""
        if self._stream is None:
            raise RuntimeError("use the stream inside `with bus.stream() as s:`")
        stream = self._stream
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def issue() -> None:
            try:
                fut = stream.submit(req, check)
            except BaseException as e:  # e.g. the stream broke
                done.set_exception(e)
                return
            fut.add_done_callback(lambda f: _copy_outcome(f, done))

        self._loop.call_soon(issue)
        return done

    def flush(self) -> None:
        """Wait until every access issued so far has its answer."""
        if self._stream is not None:
            self._loop.run(self._stream.flush())

    def close(self) -> None:
        """Finish the accesses in flight, then end the stream."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._loop.run(stream.close())


def _copy_outcome(src: asyncio.Future[Any], dst: concurrent.futures.Future[Any]) -> None:
    if src.cancelled():
        dst.cancel()
    elif (error := src.exception()) is not None:
        dst.set_exception(error)
    else:
        dst.set_result(src.result())
