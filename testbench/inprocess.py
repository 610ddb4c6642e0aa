"""What a test runs in its own process: a device model attached to a real bus (so the test can
look inside it), a recording of the accesses a bus serves, and a bare memory system with device
models on it and no bus at all (``mmiobus.devices.direct``). Each runs on an event loop in a
thread of its own, so a test calls it with plain blocking code."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from mmiobus.client.loopthread import LoopThread

TIMEOUT = 30.0


class _Background:
    """A coroutine running on a loop thread of its own until ``stop()`` cancels it and waits
    for it to unwind."""

    def __init__(self, coro: Any) -> None:
        self.thread = LoopThread()
        self.task: asyncio.Task[Any] | None = None

        async def main() -> Any:
            self.task = asyncio.current_task()
            return await coro

        self.future = self.thread.submit(main())

    def stop(self) -> None:
        async def cancel() -> None:
            if self.task is not None and not self.task.done():
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task

        with contextlib.suppress(BaseException):
            self.thread.run(cancel())
        self.thread.stop()


class InProcessDevice:
    """``device`` (an ``mmiobus.devices.Device``) serving ``claims`` (or a region of its own
    at ``at``) on the bus at ``server``, from this process. Ready once constructed."""

    def __init__(
        self,
        device: Any,
        server: str,
        claims: list[str],
        at: int | None = None,
        size: int | None = None,
        name: str | None = None,
        token: str = "",
    ) -> None:
        from mmiobus.devices import DeviceRunner, Placement

        self.device = device
        self.name = name or (claims[0] if claims else type(device).__name__.lower())
        if size is not None:
            device.size = size
        placement = Placement(addr=at) if at is not None else None
        ready = threading.Event()
        self.runner = DeviceRunner(device, server, name=self.name, claims=claims,
                                   placement=placement, reconnect=False, token=token,
                                   on_ready=lambda *_: ready.set())  # fmt: skip
        self.background = _Background(self.runner.run())
        self.future = self.background.future
        deadline = time.monotonic() + TIMEOUT
        while not ready.wait(0.05):
            if self.future.done() or time.monotonic() > deadline:
                error = self.future.exception() if self.future.done() else "it took too long"
                self.stop()
                raise AssertionError(f"device {self.name!r} could not attach: {error}")

    def stop(self) -> None:
        """Detach it (its regions fall back to what they answer without a device)."""
        self.background.stop()


class Recording:
    """The accesses the bus at ``server`` serves from now on, that pass ``filters`` (the
    keyword arguments of ``Bus.trace``), collected as they come. ``subscribers()`` counts the
    bus's trace subscribers: the recording is ready once the bus counts it."""

    def __init__(
        self,
        server: str,
        filters: dict[str, Any],
        subscribers: Callable[[], int],
        credentials: Any = None,
    ) -> None:
        from mmiobus.client import AsyncBus

        from .rig import wait

        self.events: list[Any] = []
        self.lost = 0
        self._lock = threading.Lock()
        before = subscribers()

        async def collect() -> None:
            async with AsyncBus(server, credentials=credentials) as bus:
                async for event in bus.trace(**filters):
                    with self._lock:
                        if event.lost:
                            self.lost += event.lost
                        else:
                            self.events.append(event)

        self.background = _Background(collect())
        self.future = self.background.future
        try:
            wait(lambda: self.future.done() or subscribers() > before, TIMEOUT,
                 lambda: "the bus did not take the trace subscription")  # fmt: skip
        except AssertionError:
            self.stop()
            raise
        if self.future.done():
            error = self.future.exception()
            self.stop()
            raise AssertionError(f"cannot record: {error}")

    def snapshot(self) -> list[Any]:
        """The events so far."""
        with self._lock:
            return list(self.events)

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = TIMEOUT) -> Any:
        """The first event ``predicate`` accepts, once it has arrived."""
        from .rig import wait

        def found() -> Any:
            return next((e for e in self.snapshot() if predicate(e)), None)

        return wait(found, timeout, lambda: f"no such access within {timeout:g}s "
                    f"({len(self.snapshot())} recorded)")  # fmt: skip

    def stop(self) -> None:
        """Stop recording (the events stay)."""
        self.background.stop()


class DirectBus:
    """A bare memory system (one address space, ``ram`` bytes of RAM at 0 if asked) with
    device models attached straight onto it: no server, no network."""

    def __init__(self, ram: int = 0) -> None:
        from mmiobus.memory import MemorySystem

        self.thread = LoopThread()
        self.system = MemorySystem()
        root = self.system.container("system", 2**64)
        if ram:
            root.add_subregion(0, self.system.ram("ram", ram))
        self.space = self.system.address_space("memory", root)
        self.hosts: list[Any] = []

    def attach(self, device: Any, addr: int, name: str | None = None) -> Any:
        """Map ``device`` at ``addr`` and start it; returns it."""
        from mmiobus.devices import attach

        self.hosts.append(self.thread.run(attach(device, self.space, addr, name=name)))
        return device

    def read(self, addr: int, size: int) -> bytes:
        """Read; ``mmiobus.client.BusFault`` unless the result is OK."""
        from mmiobus.client import BusFault

        out = self.thread.run(self.space.read_async(addr, size))
        if out.result:
            raise BusFault(addr, size, out.result, False)
        return bytes(out.data)

    def write(self, addr: int, data: bytes) -> None:
        """Write; ``mmiobus.client.BusFault`` unless the result is OK."""
        from mmiobus.client import BusFault

        result = self.thread.run(self.space.write_async(addr, data))
        if result:
            raise BusFault(addr, len(data), result, True)

    def read_u32(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def write_u32(self, addr: int, value: int) -> None:
        self.write(addr, value.to_bytes(4, "little"))

    def close(self) -> None:
        for host in self.hosts:
            self.thread.run(host.stop())
        self.thread.stop()
