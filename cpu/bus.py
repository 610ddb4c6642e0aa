"""The Bus seam: where every guest access that is not RAM or a board device goes.

Contract of a :class:`Bus` (all addresses are guest-physical, sizes 1, 2, 4 or 8,
values little-endian integers as the CPU sees them):

``read(addr, size) -> int``
    Synchronous. Returns the value, or raises :class:`BusFault`. A read is a
    barrier: it must not be answered before every earlier ``write`` on the
    same bus has taken effect (a pipelining bus waits for its posted writes).
``write(addr, size, value) -> None``
    May be *posted*: the bus may return before the write has taken effect
    (send it and go on, never wait for the answer). A fault of a posted write
    is reported later, by the next ``read`` or ``flush``, as a
    :class:`BusFault` whose ``posted`` is True. A bus that does not pipeline
    just performs the write and raises at once.
``flush() -> None``
    Waits until every posted write has taken effect; raises the first
    deferred fault. The CPU calls it when it stops, so output is complete.
``push() -> None`` (optional)
    A bus that holds writes back to send them with the next read sends them
    now, without waiting. The engine calls it at the end of every slice,
    before it waits for an interrupt and before it touches a board device.

Ready-made buses:

* :class:`DeviceBus` -- in-process device models in address windows (called directly).
* :class:`CallableBus` -- three plain functions, e.g. the blocking RPCs of a remote bus.
* :class:`PostedWriteBus` -- wraps any bus and pipelines its writes on a worker thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class BusFault(Exception):
    """An access the bus could not complete (decode error, device error)."""

    def __init__(
        self,
        addr: int,
        size: int,
        is_write: bool,
        reason: str = "decode error",
        posted: bool = False,
    ) -> None:
        self.addr, self.size, self.is_write, self.reason, self.posted = (
            addr,
            size,
            is_write,
            reason,
            posted,
        )
        kind = "write" if is_write else "read"
        late = " (a posted write, reported by the next read)" if posted else ""
        what = f"{size} byte{'s' if size != 1 else ''}"
        super().__init__(f"bus fault: {kind} of {what} at {addr:#x}: {reason}{late}")


@runtime_checkable
class Bus(Protocol):
    """What the CPU calls for every access outside RAM and its board devices."""

    def read(self, addr: int, size: int) -> int: ...

    def write(self, addr: int, size: int, value: int) -> None: ...

    def flush(self) -> None: ...


class Device(Protocol):
    """An in-process device model: offsets are relative to its window."""

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


@dataclass
class Window:
    """A device placed at [base, base + size) on a :class:`DeviceBus`."""

    base: int
    size: int
    device: Device
    name: str


class DeviceBus:
    """A bus of local device models, each in its window; no posting (writes are
    performed before ``write`` returns). An access outside every window is a
    :class:`BusFault`; an exception from a device propagates unchanged (a device
    that wants the access to fault raises :class:`BusFault` itself)."""

    def __init__(self) -> None:
        self.windows: list[Window] = []
        self._last: Window | None = None

    def attach(self, base: int, size: int, device: Device, name: str | None = None) -> Device:
        """Place *device* at [base, base + size); windows may not overlap."""
        for w in self.windows:
            if base < w.base + w.size and w.base < base + size:
                raise ValueError(f"window {base:#x}+{size:#x} overlaps {w.name} at {w.base:#x}")
        self.windows.append(Window(base, size, device, name or type(device).__name__))
        self.windows.sort(key=lambda w: w.base)
        return device

    def _find(self, addr: int, size: int, is_write: bool) -> Window:
        w = self._last
        if w is not None and w.base <= addr and addr + size <= w.base + w.size:
            return w
        for w in self.windows:
            if w.base <= addr and addr + size <= w.base + w.size:
                self._last = w
                return w
        raise BusFault(addr, size, is_write)

    def read(self, addr: int, size: int) -> int:
        w = self._find(addr, size, False)
        return w.device.read(addr - w.base, size)

    def write(self, addr: int, size: int, value: int) -> None:
        w = self._find(addr, size, True)
        w.device.write(addr - w.base, size, value)

    def flush(self) -> None:
        """Nothing is ever posted on a local bus."""


class CallableBus:
    """A bus made of functions, e.g. the blocking RPCs of a remote bus client.

    *read_fn(addr, size) -> int* and *write_fn(addr, size, value)* raise
    :class:`BusFault` (or return normally); *flush_fn* is optional."""

    def __init__(
        self,
        read_fn: Callable[[int, int], int],
        write_fn: Callable[[int, int, int], None],
        flush_fn: Callable[[], None] | None = None,
    ) -> None:
        self._read, self._write, self._flush = read_fn, write_fn, flush_fn

    def read(self, addr: int, size: int) -> int:
        return self._read(addr, size)

    def write(self, addr: int, size: int, value: int) -> None:
        self._write(addr, size, value)

    def flush(self) -> None:
        if self._flush is not None:
            self._flush()


class PostedWriteBus:
    """Pipelines the writes of an inner bus: ``write`` queues and returns at
    once, a worker thread performs the writes in order; ``read`` and ``flush``
    first wait until the queue is drained (the barrier), then raise the first
    fault a posted write met, if any. Reads go to the inner bus directly.

    Use it around a bus whose writes are slow round trips (RPCs): the CPU goes
    on while the writes travel, and order is kept because a read waits.
    """

    def __init__(self, inner: Bus, depth: int = 1024) -> None:
        self.inner = inner
        self._q: queue.Queue[tuple[int, int, int] | None] = queue.Queue(maxsize=depth)
        self._fault: BusFault | None = None
        self._worker = threading.Thread(target=self._run, name="posted-writes", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:  # close()
                    return
                addr, size, value = item
                if self._fault is None:  # after a fault, later writes are dropped
                    try:
                        self.inner.write(addr, size, value)
                    except BusFault as fault:
                        self._fault = BusFault(
                            fault.addr, fault.size, True, fault.reason, posted=True
                        )
            finally:
                self._q.task_done()

    def _barrier(self) -> None:
        self._q.join()
        if self._fault is not None:
            fault, self._fault = self._fault, None
            raise fault

    def write(self, addr: int, size: int, value: int) -> None:
        self._q.put((addr, size, value))

    def read(self, addr: int, size: int) -> int:
        self._barrier()
        return self.inner.read(addr, size)

    def flush(self) -> None:
        self._barrier()
        self.inner.flush()

    def close(self) -> None:
        """Drain the queue and stop the worker thread."""
        self._q.put(None)
        self._worker.join()
