"""`Bus`: the blocking client — a thin shell that runs an `AsyncBus` on a private event loop
thread, so both clients share one implementation. Every method has the parameters of its
`AsyncBus` namesake (a test checks that they match)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Iterator
from typing import Any, Literal, TypeVar, Unpack, overload

from mmiobus.credentials import Credentials
from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.memory.addrspace import ReadResult
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import devices_pb2

from .aio import AsyncBus
from .core import BatchAccess, ByteOrder
from .loopthread import LoopThread
from .streams import Stream
from .topology import Transaction
from .tracing import TraceFilters

T = TypeVar("T")


class Bus:
    """A blocking connection to an mmiobus server; the same methods as ``AsyncBus``.

    Use it as a context manager (``with Bus("127.0.0.1:7170") as bus: ...``) or call
    ``close()`` when done.
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
        bus = AsyncBus(
            address,
            address_space=address_space,
            attrs=attrs,
            timeout=timeout,
            credentials=credentials,
        )
        self._loop: LoopThread | None = LoopThread()
        try:
            self._bus = self._loop.run(_connect(bus))
        except BaseException:
            self._loop.stop()
            self._loop = None
            raise
        self.address = self._bus.address

    def close(self) -> None:
        """Close the connection and stop its event loop thread."""
        if self._loop is not None:
            try:
                self._loop.run(self._bus.close())
            finally:
                self._loop.stop()
                self._loop = None

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        loop = getattr(self, "_loop", None)
        if loop is not None:
            try:
                loop.stop()
            except Exception:
                pass

    @property
    def _running(self) -> LoopThread:
        if self._loop is None:
            raise RuntimeError("the Bus is closed")
        return self._loop

    @property
    def info(self) -> pb.Info:
        """What the server said about itself at connection (version, byte order, limits)."""
        return self._bus.info

    @property
    def byteorder(self) -> ByteOrder:
        """``"little"`` or ``"big"``: the machine's byte order."""
        return self._bus.byteorder

    # -- single accesses ----------------------------------------------------------------------

    @overload
    def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: Literal[True] = True,
    ) -> bytes: ...

    @overload
    def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: Literal[False],
    ) -> ReadResult: ...

    @overload
    def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> bytes | ReadResult: ...

    def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> bytes | ReadResult:
        """Read ``size`` bytes: the bytes, or with ``check=False`` a ``ReadResult``."""
        return self._running.run(
            self._bus.read(addr, size, address_space=address_space, attrs=attrs, check=check)
        )

    @overload
    def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: Literal[True] = True,
    ) -> None: ...

    @overload
    def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: Literal[False],
    ) -> MemTxResult: ...

    @overload
    def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> MemTxResult | None: ...

    def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> MemTxResult | None:
        """Write ``data``: None, or with ``check=False`` the ``MemTxResult``."""
        return self._running.run(
            self._bus.write(addr, data, address_space=address_space, attrs=attrs, check=check)
        )

    def read_u8(
        self, addr: int, *, address_space: str | None = None, attrs: MemTxAttrs | None = None
    ) -> int:
        """One byte (``BusFault`` on a fault)."""
        return self._running.run(self._bus.read_u8(addr, address_space=address_space, attrs=attrs))

    def read_u16(
        self, addr: int, *, address_space: str | None = None, attrs: MemTxAttrs | None = None
    ) -> int:
        """A 16-bit value in the machine's byte order."""
        return self._running.run(self._bus.read_u16(addr, address_space=address_space, attrs=attrs))

    def read_u32(
        self, addr: int, *, address_space: str | None = None, attrs: MemTxAttrs | None = None
    ) -> int:
        """A 32-bit value in the machine's byte order."""
        return self._running.run(self._bus.read_u32(addr, address_space=address_space, attrs=attrs))

    def read_u64(
        self, addr: int, *, address_space: str | None = None, attrs: MemTxAttrs | None = None
    ) -> int:
        """A 64-bit value in the machine's byte order."""
        return self._running.run(self._bus.read_u64(addr, address_space=address_space, attrs=attrs))

    def write_u8(
        self,
        addr: int,
        value: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> None:
        """Write one byte (``ValueError`` if ``value`` does not fit)."""
        self._running.run(self._bus.write_u8(addr, value, address_space=address_space, attrs=attrs))

    def write_u16(
        self,
        addr: int,
        value: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> None:
        """Write a 16-bit value in the machine's byte order."""
        self._running.run(
            self._bus.write_u16(addr, value, address_space=address_space, attrs=attrs)
        )

    def write_u32(
        self,
        addr: int,
        value: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> None:
        """Write a 32-bit value in the machine's byte order."""
        self._running.run(
            self._bus.write_u32(addr, value, address_space=address_space, attrs=attrs)
        )

    def write_u64(
        self,
        addr: int,
        value: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> None:
        """Write a 64-bit value in the machine's byte order."""
        self._running.run(
            self._bus.write_u64(addr, value, address_space=address_space, attrs=attrs)
        )

    # -- batches and streams ------------------------------------------------------------------

    def batch(self, accesses: Iterable[BatchAccess], *, check: bool = True) -> list[Any]:
        """``AsyncBus.batch``: many accesses in order, in few messages."""
        return self._running.run(self._bus.batch(list(accesses), check=check))

    def stream(self) -> Stream:
        """A pipelined stream: ``with bus.stream() as s: f = s.read(...); f.result()``."""
        return Stream(self._bus, self._running)

    # -- topology and inspection --------------------------------------------------------------

    def transaction(self) -> SyncTransaction:
        """``with bus.transaction() as t: t.create_region(...)`` — applied at the end."""
        return SyncTransaction(self)

    def apply(self, ops: Transaction | Iterable[pb.TopologyOp]) -> pb.ApplyTopologyResponse:
        """Apply topology operations all together (or none, raising the server's reason)."""
        return self._running.run(self._bus.apply(ops))

    def topology(self, flat_views: bool = True) -> pb.Topology:
        """The region trees (and flat views), structured."""
        return self._running.run(self._bus.topology(flat_views))

    def mtree(self, flat: bool = False, disabled: bool = False) -> str:
        """QEMU's `info mtree [-f] [-D]` text for the bus."""
        return self._running.run(self._bus.mtree(flat, disabled))

    # -- streams of events ----------------------------------------------------------------------

    def trace(self, **filters: Unpack[TraceFilters]) -> Iterator[pb.TraceEvent]:
        """Blocking iterator over ``AsyncBus.trace`` events (break out to stop)."""
        return self._iterate(self._bus.trace(**filters))

    def watch_topology(self, address_space: str = "") -> Iterator[pb.TopologyChange]:
        """Blocking iterator over ``AsyncBus.watch_topology`` messages."""
        return self._iterate(self._bus.watch_topology(address_space))

    def _iterate(self, agen: AsyncGenerator[T, None]) -> Iterator[T]:
        loop = self._running
        try:
            while True:
                try:
                    yield loop.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run(agen.aclose())

    # -- devices and interrupts ---------------------------------------------------------------

    def devices(self) -> list[devices_pb2.DeviceInfo]:
        """The devices attached now (name, peer, regions, counters)."""
        return self._running.run(self._bus.devices())

    def reset_device(self, name: str, timeout: float = 5.0) -> None:
        """Ask a device to reset; returns once it has (``Timeout`` if it does not)."""
        self._running.run(self._bus.reset_device(name, timeout))

    def irqs(self, *patterns: str) -> dict[str, bool]:
        """Interrupt line levels by name (globs select lines: ``uart0.*``)."""
        return self._running.run(self._bus.irqs(*patterns))

    def watch_irqs(self, *patterns: str) -> Iterator[devices_pb2.IrqEvent]:
        """Blocking iterator over ``AsyncBus.watch_irqs`` events (break out to stop)."""
        return self._iterate(self._bus.watch_irqs(*patterns))


async def _connect(bus: AsyncBus) -> AsyncBus:
    try:
        return await bus.connect()
    except BaseException:
        await bus.close()
        raise


class SyncTransaction(Transaction):
    """A ``Transaction`` applied when its ``with`` block ends without an exception."""

    def __init__(self, bus: Bus) -> None:
        super().__init__()
        self.bus = bus
        self.reply: pb.ApplyTopologyResponse | None = None

    def __enter__(self) -> SyncTransaction:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.reply = self.bus.apply(self)


__all__ = ["Bus", "Stream", "SyncTransaction"]
