"""`AsyncBus`: the asyncio client. (`Bus`, the blocking client, is a thin shell over this.)"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing
from typing import Any, Literal, TypeVar, Unpack, overload

import grpc
from mmiobus.credentials import Credentials
from mmiobus.endpoints import default_server, open_channel, parse_address
from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.memory.addrspace import ReadResult
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2, devices_pb2_grpc

from .core import (
    BatchAccess,
    ByteOrder,
    Requests,
    byteorder,
    encode_value,
    outcome,
    read_outcome,
    split_batches,
    write_outcome,
)
from .errors import BusError, from_rpc_error
from .streams import AsyncStream
from .topology import Transaction
from .tracing import TraceFilters, trace_request

T = TypeVar("T")

_NOT_CONNECTED = "not connected: use `async with AsyncBus(...)` or await connect()"


class AsyncBus:
    """A connection to an mmiobus server.

    ``address`` is ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH`` (default ``$MMIOBUS_SERVER``
    or 127.0.0.1:7170; a missing port is 7170; a malformed address raises
    ``mmiobus.endpoints.AddressError``). ``address_space`` and ``attrs`` are defaults for
    every access; each call may override them. Accesses raise ``BusFault`` when the bus
    answers with a fault; pass ``check=False`` to get the result instead. ``timeout``
    (seconds) bounds each call. ``credentials`` (a token, TLS) default to the environment's
    (``MMIOBUS_TOKEN``, ``MMIOBUS_TLS_CA``, ...: see ``mmiobus.credentials``).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        address_space: str = "",
        attrs: MemTxAttrs | None = None,
        timeout: float | None = 30.0,
        credentials: Credentials | None = None,
    ) -> None:
        self.address = parse_address(address or default_server())
        self.timeout = timeout
        self.credentials = credentials
        self._requests = Requests(address_space, attrs)
        self._channel: grpc.aio.Channel | None = None
        self._stub: bus_pb2_grpc.BusStub | None = None
        self._devices: devices_pb2_grpc.DevicesStub | None = None
        self._info: pb.Info | None = None

    # -- connection ---------------------------------------------------------------------------

    async def connect(self) -> AsyncBus:
        """Open the channel and ask the server what it is (fails fast if nothing answers)."""
        if self._channel is None:
            self._channel = open_channel(self.address, credentials=self.credentials)
            self._stub = bus_pb2_grpc.BusStub(self._channel)
            self._devices = devices_pb2_grpc.DevicesStub(self._channel)
        if self._info is None:
            self._info = await self._call(self.stub.GetInfo, pb.GetInfoRequest())
        return self

    async def close(self) -> None:
        """Close the channel (calls in flight fail)."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self) -> AsyncBus:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def stub(self) -> bus_pb2_grpc.BusStub:
        """The generated ``mmiobus.v1.Bus`` stub on this connection's channel."""
        if self._stub is None:
            raise BusError(_NOT_CONNECTED)
        return self._stub

    @property
    def devices_stub(self) -> devices_pb2_grpc.DevicesStub:
        """The generated ``mmiobus.v1.Devices`` stub on this connection's channel."""
        if self._devices is None:
            raise BusError(_NOT_CONNECTED)
        return self._devices

    @property
    def info(self) -> pb.Info:
        """What the server said about itself at connection (version, byte order, limits)."""
        if self._info is None:
            raise BusError(_NOT_CONNECTED)
        return self._info

    @property
    def byteorder(self) -> ByteOrder:
        """``"little"`` or ``"big"``: the machine's byte order, which ``read_u*`` and
        ``write_u*`` use."""
        return byteorder(self.info)

    @property
    def requests(self) -> Requests:
        """The access-message builder with this connection's defaults (address space,
        attributes), for streams."""
        return self._requests

    async def _call(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.address) from None

    # -- single accesses ----------------------------------------------------------------------

    @overload
    async def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: Literal[True] = True,
    ) -> bytes: ...

    @overload
    async def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: Literal[False],
    ) -> ReadResult: ...

    @overload
    async def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> bytes | ReadResult: ...

    async def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> bytes | ReadResult:
        """Read ``size`` bytes: the bytes, or with ``check=False`` a ``ReadResult``."""
        req = self._requests.read(0, addr, size, address_space, attrs)
        return read_outcome(req, await self._call(self.stub.Rw, req), check)

    @overload
    async def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: Literal[True] = True,
    ) -> None: ...

    @overload
    async def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: Literal[False],
    ) -> MemTxResult: ...

    @overload
    async def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> MemTxResult | None: ...

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

    async def _read_uint(
        self, width: int, addr: int, address_space: str | None, attrs: MemTxAttrs | None
    ) -> int:
        data = await self.read(addr, width, address_space=address_space, attrs=attrs)
        return int.from_bytes(data, self.byteorder)

    async def _write_uint(
        self,
        width: int,
        addr: int,
        value: int,
        address_space: str | None,
        attrs: MemTxAttrs | None,
    ) -> None:
        data = encode_value(value, width, self.byteorder)
        await self.write(addr, data, address_space=address_space, attrs=attrs)

    async def read_u8(
        self, addr: int, *, address_space: str | None = None, attrs: MemTxAttrs | None = None
    ) -> int:
        """One byte (``BusFault`` on a fault)."""
        return await self._read_uint(1, addr, address_space, attrs)

    async def read_u16(
        self, addr: int, *, address_space: str | None = None, attrs: MemTxAttrs | None = None
    ) -> int:
        """A 16-bit value in the machine's byte order."""
        return await self._read_uint(2, addr, address_space, attrs)

    async def read_u32(
        self, addr: int, *, address_space: str | None = None, attrs: MemTxAttrs | None = None
    ) -> int:
        """A 32-bit value in the machine's byte order."""
        return await self._read_uint(4, addr, address_space, attrs)

    async def read_u64(
        self, addr: int, *, address_space: str | None = None, attrs: MemTxAttrs | None = None
    ) -> int:
        """A 64-bit value in the machine's byte order."""
        return await self._read_uint(8, addr, address_space, attrs)

    async def write_u8(
        self,
        addr: int,
        value: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> None:
        """Write one byte (``ValueError`` if ``value`` does not fit)."""
        await self._write_uint(1, addr, value, address_space, attrs)

    async def write_u16(
        self,
        addr: int,
        value: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> None:
        """Write a 16-bit value in the machine's byte order."""
        await self._write_uint(2, addr, value, address_space, attrs)

    async def write_u32(
        self,
        addr: int,
        value: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> None:
        """Write a 32-bit value in the machine's byte order."""
        await self._write_uint(4, addr, value, address_space, attrs)

    async def write_u64(
        self,
        addr: int,
        value: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> None:
        """Write a 64-bit value in the machine's byte order."""
        await self._write_uint(8, addr, value, address_space, attrs)

    # -- batches and streams ------------------------------------------------------------------

    async def batch(self, accesses: Iterable[BatchAccess], *, check: bool = True) -> list[Any]:
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
        if any(op.WhichOneof("op") == "create_address_space" for op in ops):
            # ``info`` lists the address spaces; nothing else an operation changes is in it.
            self._info = None
            await self.connect()
        return reply

    async def topology(self, flat_views: bool = True) -> pb.Topology:
        """The region trees (and flat views), structured."""
        return await self._call(self.stub.GetTopology, pb.GetTopologyRequest(flat_views=flat_views))

    async def mtree(self, flat: bool = False, disabled: bool = False) -> str:
        """QEMU's `info mtree [-f] [-D]` text for the bus."""
        reply = await self._call(self.stub.Mtree, pb.MtreeRequest(flat=flat, disabled=disabled))
        return reply.text

    # -- streams of events ----------------------------------------------------------------------

    async def _follow(self, call: Any) -> AsyncGenerator[Any, None]:
        """The messages of a server stream; ends it when the caller stops iterating."""
        try:
            async for message in call:
                yield message
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(e, self.address) from None
        finally:
            call.cancel()

    async def trace(self, **filters: Unpack[TraceFilters]) -> AsyncGenerator[pb.TraceEvent, None]:
        """Every access the bus serves that passes ``filters`` (see ``trace_request``), as it
        happens. An event with ``lost`` set says how many were dropped because this
        subscriber fell behind. Break out of the loop to stop."""
        async with aclosing(self._follow(self.stub.Trace(trace_request(**filters)))) as batches:
            async for batch in batches:
                for event in batch.events:
                    yield event

    async def watch_topology(
        self, address_space: str = ""
    ) -> AsyncGenerator[pb.TopologyChange, None]:
        """The address space's flat view (a ``snapshot``), then one message per committed
        transaction that changed it (region_del then region_add changes)."""
        request = pb.WatchTopologyRequest(address_space=address_space)
        async with aclosing(self._follow(self.stub.WatchTopology(request))) as changes:
            async for change in changes:
                yield change

    # -- devices and interrupts ---------------------------------------------------------------

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

    async def watch_irqs(self, *patterns: str) -> AsyncGenerator[devices_pb2.IrqEvent, None]:
        """The current levels (``snapshot`` events), then every change, as they happen; an event
        with ``lost`` set says how many changes this watch lost because it fell behind."""
        request = devices_pb2.WatchIrqsRequest(lines=list(patterns))
        async with aclosing(self._follow(self.devices_stub.WatchIrqs(request))) as events:
            async for event in events:
                yield event


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


__all__ = ["AsyncBus", "AsyncStream", "AsyncTransaction", "ReadResult"]
