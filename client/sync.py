"""`Bus`: the blocking client — a thin shell that runs an `AsyncBus` on a private event loop
thread, so both clients share one implementation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.v1 import bus_pb2 as pb

from .aio import AsyncBus, AsyncStream
from .core import Access
from .topology import Transaction

T = TypeVar("T")


class _LoopThread:
    """An event loop running in a daemon thread; ``run`` submits a coroutine and waits."""

    def __init__(self) -> None:
        try:
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="mmiobus-client", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[T]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking Bus cannot be used from its own callbacks")
        finished = threading.Event()
        fut = asyncio.run_coroutine_threadsafe(_signalling(coro, finished), self.loop)
        try:
            return fut.result()
        except BaseException:
            # Interrupted (Ctrl-C) while the coroutine still runs: cancel it and let it unwind
            # before the caller goes on (closing the iterator it was advancing, say).
            fut.cancel()
            finished.wait(5)
            raise

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


async def _signalling(coro: Awaitable[T], finished: threading.Event) -> T:
    try:
        return await coro
    finally:
        finished.set()


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
    ) -> None:
        self._loop = _LoopThread()
        try:
            self._bus: AsyncBus = self._loop.run(_connect(address, address_space, attrs, timeout))
        except BaseException:
            self._loop.stop()
            raise
        self.address = self._bus.address

    def close(self) -> None:
        if self._loop is not None:
            try:
                self._loop.run(self._bus.close())
            finally:
                self._loop.stop()
                self._loop = None  # type: ignore[assignment]

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
    def info(self) -> pb.Info:
        return self._bus.info

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        return self._loop.run(fn(*args, **kw))

    def read(self, addr: int, size: int, **kw: Any) -> Any:
        """Read ``size`` bytes: the bytes, or with ``check=False`` a ``ReadResult``."""
        return self._run(self._bus.read, addr, size, **kw)

    def write(self, addr: int, data: bytes, **kw: Any) -> MemTxResult | None:
        """Write ``data``: None, or with ``check=False`` the ``MemTxResult``."""
        return self._run(self._bus.write, addr, data, **kw)

    def read_u8(self, addr: int, **kw: Any) -> int:
        return self._run(self._bus.read_u8, addr, **kw)

    def read_u16(self, addr: int, **kw: Any) -> int:
        return self._run(self._bus.read_u16, addr, **kw)

    def read_u32(self, addr: int, **kw: Any) -> int:
        return self._run(self._bus.read_u32, addr, **kw)

    def read_u64(self, addr: int, **kw: Any) -> int:
        return self._run(self._bus.read_u64, addr, **kw)

    def write_u8(self, addr: int, value: int, **kw: Any) -> None:
        self._run(self._bus.write_u8, addr, value, **kw)

    def write_u16(self, addr: int, value: int, **kw: Any) -> None:
        self._run(self._bus.write_u16, addr, value, **kw)

    def write_u32(self, addr: int, value: int, **kw: Any) -> None:
        self._run(self._bus.write_u32, addr, value, **kw)

    def write_u64(self, addr: int, value: int, **kw: Any) -> None:
        self._run(self._bus.write_u64, addr, value, **kw)

    def batch(self, accesses: Iterable[Access], *, check: bool = True) -> list[Any]:
        """``AsyncBus.batch``: many accesses in order, in few messages."""
        return self._run(self._bus.batch, list(accesses), check=check)

    def stream(self) -> Stream:
        """A pipelined stream: ``with bus.stream() as s: f = s.read(...); f.result()``."""
        return Stream(self)

    def transaction(self) -> SyncTransaction:
        """``with bus.transaction() as t: t.create_region(...)`` — applied at the end."""
        return SyncTransaction(self)

    def apply(self, ops: Transaction | Iterable[pb.TopologyOp]) -> pb.ApplyTopologyResponse:
        return self._run(self._bus.apply, ops)

    def topology(self, flat_views: bool = True) -> pb.Topology:
        return self._run(self._bus.topology, flat_views)

    def mtree(self, flat: bool = False, disabled: bool = False) -> str:
        return self._run(self._bus.mtree, flat, disabled)

    def trace(self, **filters: Any) -> Iterator[Any]:
        """Blocking iterator over ``AsyncBus.trace`` events (break out to stop)."""
        return self._iterate(self._bus.trace(**filters))

    def watch_topology(self, address_space: str = "") -> Iterator[Any]:
        """Blocking iterator over ``AsyncBus.watch_topology`` messages."""
        return self._iterate(self._bus.watch_topology(address_space))

    def _iterate(self, agen: Any) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._loop.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run(agen.aclose())

    def devices(self) -> list[Any]:
        return self._run(self._bus.devices)

    def reset_device(self, name: str, timeout: float = 5.0) -> None:
        self._run(self._bus.reset_device, name, timeout)

    def irqs(self, *patterns: str) -> dict[str, bool]:
        return self._run(self._bus.irqs, *patterns)

    def watch_irqs(self, *patterns: str) -> Iterator[Any]:
        """Blocking iterator over ``AsyncBus.watch_irqs`` events (break out to stop)."""
        return self._iterate(self._bus.watch_irqs(*patterns))


async def _connect(
    address: str | None, address_space: str, attrs: MemTxAttrs | None, timeout: float | None
) -> AsyncBus:
    bus = AsyncBus(address, address_space=address_space, attrs=attrs, timeout=timeout)
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


class Stream:
    """The blocking face of ``AsyncStream``: ``read``/``write`` return
    ``concurrent.futures.Future`` objects at once; accesses are pipelined in issue order."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._stream: AsyncStream | None = None

    def __enter__(self) -> Stream:
        stream = self._bus._bus.stream()
        self._stream = self._bus._loop.run(stream.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> concurrent.futures.Future[Any]:
        req = self._bus._bus._requests.read(0, addr, size, address_space, attrs)
        return self._submit(req, check)

    def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> concurrent.futures.Future[Any]:
        req = self._bus._bus._requests.write(0, addr, data, address_space, attrs)
        return self._submit(req, check)

    def _submit(self, req: pb.RwRequest, check: bool) -> concurrent.futures.Future[Any]:
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

        self._bus._loop.loop.call_soon_threadsafe(issue)
        return done

    def flush(self) -> None:
        if self._stream is not None:
            self._bus._loop.run(self._stream.flush())

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._bus._loop.run(stream.close())


def _copy_outcome(src: asyncio.Future[Any], dst: concurrent.futures.Future[Any]) -> None:
    if src.cancelled():
        dst.cancel()
    elif src.exception() is not None:
        dst.set_exception(src.exception())
    else:
        dst.set_result(src.result())
