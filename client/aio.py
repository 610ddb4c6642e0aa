"""`AsyncBus`: the asyncio client. (`Bus`, the blocking client, is a thin shell over this.)"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.memory.addrspace import ReadResult
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2, devices_pb2_grpc

from .core import (
    Access,
    Requests,
    byteorder,
    channel_target,
    default_server,
    encode_value,
    outcome,
    read_outcome,
    split_batches,
    write_outcome,
)
from .errors import BusError, from_rpc_error
from .topology import Transaction
from .tracing import trace_request

# The server enforces its own limits (and says which); the client splits what it sends to fit.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


class AsyncBus:
    """A connection to an mmiobus server.

    ``address`` is ``HOST:PORT`` or ``unix:PATH`` (default ``$MMIOBUS_SERVER`` or
    127.0.0.1:7170). ``address_space`` and ``attrs`` are defaults for every access; each call
    may override them. Accesses raise ``BusFault`` when the bus answers with a fault; pass
    ``check=False`` to get the result instead. ``timeout`` (seconds) bounds each call.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        address_space: str = "",
        attrs: MemTxAttrs | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.address = address or default_server()
        self.timeout = timeout
        self._requests = Requests(address_space, attrs)
        self._channel: grpc.aio.Channel | None = None
        self._stub: bus_pb2_grpc.BusStub | None = None
        self._devices: devices_pb2_grpc.DevicesStub | None = None
        self._info: pb.Info | None = None
        self._ids = itertools.count(1)

    # -- connection ---------------------------------------------------------------------------

    async def connect(self) -> AsyncBus:
        """Open the channel and ask the server what it is (fails fast if nothing answers)."""
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                channel_target(self.address), options=_CHANNEL_OPTIONS
            )
            self._stub = bus_pb2_grpc.BusStub(self._channel)
            self._devices = devices_pb2_grpc.DevicesStub(self._channel)
        if self._info is None:
            self._info = await self._call(self._stub.GetInfo, pb.GetInfoRequest())  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self) -> AsyncBus:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def stub(self) -> bus_pb2_grpc.BusStub:
        if self._stub is None:
            raise BusError("not connected: use `async with AsyncBus(...)` or await connect()")
        return self._stub

    @property
    def info(self) -> pb.Info:
        """What the server said about itself at connection (version, byte order, limits)."""
        if self._info is None:
            raise BusError("not connected: use `async with AsyncBus(...)` or await connect()")
        return self._info

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.address) from None

    # -- single accesses ----------------------------------------------------------------------

    async def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> Any:
        """Read ``size`` bytes: the bytes, or with ``check=False`` a ``ReadResult``."""
        req = self._requests.read(0, addr, size, address_space, attrs)
        return read_outcome(req, await self._call(self.stub.Rw, req), check)

    async def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> MemTxResult | None:
        """Write ``data``: None, or with ``check=False`` the ``MemTxResult``."""
        req = self._requests.write(0, addr, data, address_space, attrs)
        return write_outcome(req, await self._call(self.stub.Rw, req), check)

    async def _read_uint(self, width: int, addr: int, kw: dict[str, Any]) -> int:
        data = await self.read(addr, width, **kw)
        return int.from_bytes(data, byteorder(self.info))  # type: ignore[arg-type]

    async def _write_uint(self, width: int, addr: int, value: int, kw: dict[str, Any]) -> None:
        await self.write(addr, encode_value(value, width, byteorder(self.info)), **kw)

    async def read_u8(self, addr: int, **kw: Any) -> int:
        return await self._read_uint(1, addr, kw)

    async def read_u16(self, addr: int, **kw: Any) -> int:
        """A 16-bit value in the machine's byte order."""
        return await self._read_uint(2, addr, kw)

    async def read_u32(self, addr: int, **kw: Any) -> int:
        """A 32-bit value in the machine's byte order."""
        return await self._read_uint(4, addr, kw)

    async def read_u64(self, addr: int, **kw: Any) -> int:
        """A 64-bit value in the machine's byte order."""
        return await self._read_uint(8, addr, kw)

    async def write_u8(self, addr: int, value: int, **kw: Any) -> None:
        await self._write_uint(1, addr, value, kw)

    async def write_u16(self, addr: int, value: int, **kw: Any) -> None:
        await self._write_uint(2, addr, value, kw)

    async def write_u32(self, addr: int, value: int, **kw: Any) -> None:
        await self._write_uint(4, addr, value, kw)

    async def write_u64(self, addr: int, value: int, **kw: Any) -> None:
        await self._write_uint(8, addr, value, kw)

    # -- batches and streams ------------------------------------------------------------------

    async def batch(self, accesses: Iterable[Access], *, check: bool = True) -> list[Any]:
        """Run ``Read``/``Write`` accesses in order in as few RwBatch calls as the server's limits
        allow; returns one outcome per access (bytes or None; with ``check=False``,
        ReadResult or MemTxResult). With ``check``, the first fault raises ``BusFault`` naming
        its index, after the whole batch ran."""
        reqs = [self._requests.access(i, a) for i, a in enumerate(accesses)]
        responses: list[pb.RwResponse] = []
        for chunk in split_batches(reqs, self.info.limits):
            reply = await self._call(self.stub.RwBatch, pb.RwBatchRequest(accesses=chunk))
            responses.extend(reply.results)
        return [
            outcome(r, p, check, i) for i, (r, p) in enumerate(zip(reqs, responses, strict=True))
        ]

    def stream(self) -> AsyncStream:
        """A pipelined stream: ``async with bus.stream() as s: fut = s.read(...)``."""
        return AsyncStream(self)

    # -- topology and inspection --------------------------------------------------------------

    def transaction(self) -> AsyncTransaction:
        """``async with bus.transaction() as t: t.create_region(...)`` — applied at the end."""
        return AsyncTransaction(self)

    async def apply(self, ops: Transaction | Iterable[pb.TopologyOp]) -> pb.ApplyTopologyResponse:
        """Apply topology operations all together (or none, raising the server's reason)."""
        ops = ops.ops if isinstance(ops, Transaction) else list(ops)
        reply = await self._call(self.stub.ApplyTopology, pb.ApplyTopologyRequest(ops=ops))
        self._info = None  # address spaces may have changed
        await self.connect()
        return reply

    async def topology(self, flat_views: bool = True) -> pb.Topology:
        """The region trees (and flat views), structured."""
        return await self._call(self.stub.GetTopology, pb.GetTopologyRequest(flat_views=flat_views))

    async def mtree(self, flat: bool = False, disabled: bool = False) -> str:
        """QEMU's `info mtree [-f] [-D]` text for the bus."""
        reply = await self._call(self.stub.Mtree, pb.MtreeRequest(flat=flat, disabled=disabled))
        return reply.text

    # -- tracing ------------------------------------------------------------------------------

    async def trace(self, **filters: Any) -> AsyncIterator[pb.TraceEvent]:
        """Every access the bus serves that passes ``filters`` (see ``trace_request``), as it
        happens. An event with ``lost`` set says how many were dropped because this
        subscriber fell behind. Break out of the loop to stop."""
        call = self.stub.Trace(trace_request(**filters))
        try:
            async for batch in call:
                for event in batch.events:
                    yield event
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(e, self.address) from None
        finally:
            call.cancel()

    async def watch_topology(self, address_space: str = "") -> AsyncIterator[pb.TopologyChange]:
        """The address space's flat view (a ``snapshot``), then one message per committed
        transaction that changed it (region_del then region_add changes)."""
        call = self.stub.WatchTopology(pb.WatchTopologyRequest(address_space=address_space))
        try:
            async for change in call:
                yield change
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(e, self.address) from None
        finally:
            call.cancel()

    # -- devices and interrupts ---------------------------------------------------------------

    @property
    def devices_stub(self) -> devices_pb2_grpc.DevicesStub:
        if self._devices is None:
            raise BusError("not connected: use `async with AsyncBus(...)` or await connect()")
        return self._devices

    async def devices(self) -> list[devices_pb2.DeviceInfo]:
        """The devices attached now (name, peer, regions, counters)."""
        reply = await self._call(self.devices_stub.ListDevices, devices_pb2.ListDevicesRequest())
        return list(reply.devices)

    async def reset_device(self, name: str, timeout: float = 5.0) -> None:
        """Ask a device to reset; returns once it has (``Timeout`` if it does not)."""
        await self._call(
            self.devices_stub.ResetDevice,
            devices_pb2.ResetDeviceRequest(name=name, timeout_ms=max(1, int(timeout * 1000))),
        )

    async def irqs(self, *patterns: str) -> dict[str, bool]:
        """Interrupt line levels by name (globs select lines: ``uart0.*``)."""
        reply = await self._call(
            self.devices_stub.GetIrqs, devices_pb2.GetIrqsRequest(lines=list(patterns))
        )
        return {line.name: line.level for line in reply.lines}

    async def watch_irqs(self, *patterns: str) -> AsyncIterator[devices_pb2.IrqEvent]:
        """The current levels (``snapshot`` events), then every change, as they happen."""
        call = self.devices_stub.WatchIrqs(devices_pb2.WatchIrqsRequest(lines=list(patterns)))
        try:
            async for event in call:
                yield event
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(e, self.address) from None
        finally:
            call.cancel()


class AsyncTransaction(Transaction):
    """A ``Transaction`` applied when its ``async with`` block ends without an exception."""

    def __init__(self, bus: AsyncBus) -> None:
        super().__init__()
        self.bus = bus
        self.reply: pb.ApplyTopologyResponse | None = None

    async def __aenter__(self) -> AsyncTransaction:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.reply = await self.bus.apply(self)


class AsyncStream:
    """Pipelined accesses on one RwStream.

    ``read``/``write`` return futures at once. One pump sends everything that has queued up
    as one message (within the server's limits), reads the answer, and repeats: many accesses
    in flight cost few messages, and with one message out at a time neither side can block the
    other on flow control. Accesses run in the order they were issued.
    """

    def __init__(self, bus: AsyncBus) -> None:
        self.bus = bus
        self._call: Any = None
        self._queue: list[tuple[pb.RwRequest, asyncio.Future[Any], bool]] = []
        self._waiting: list[tuple[pb.RwRequest, asyncio.Future[Any], bool]] = []
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

    def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> asyncio.Future[Any]:
        return self.submit(self.bus._requests.read(0, addr, size, address_space, attrs), check)

    def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> asyncio.Future[Any]:
        return self.submit(self.bus._requests.write(0, addr, data, address_space, attrs), check)

    def submit(self, req: pb.RwRequest, check: bool = True) -> asyncio.Future[Any]:
        """Queue a prepared access (its id is set here); the future resolves to its outcome."""
        req.id = next(self.bus._ids)
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
            return BusError(f"the stream to {self.bus.address} broke: {e!r}")
        return from_rpc_error(_Status(code, details), self.bus.address)

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


class _Status(grpc.RpcError):
    """A finished call's status, in the shape ``from_rpc_error`` reads."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


__all__ = ["AsyncBus", "AsyncStream", "AsyncTransaction", "ReadResult"]
