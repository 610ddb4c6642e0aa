"""One initiator's accesses carried out in the order it issued them — a device's DMA, a CPU's
loads and stores — each answered in that order.

An access that goes to the same remote device as those still waiting for their answers is sent
at once (the device's stream keeps them in order, and a CPU's store followed by a load of the
same UART costs one round trip, not two); any other waits until those are answered, so that
RAM and other devices see the accesses in order. Accesses that complete at once (RAM, devices
in the server) cost no task.

Both are bounded: at most ``PIPELINE_BYTES`` go to a device before the first of them is
answered, and what waits its turn is at most ``--max-device-queue`` bytes (then ``submit``
refuses with ``LimitExceeded``, which ends a device's session: it sends DMA faster than the
bus can carry it out).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from mmiobus.devices.host import DmaRequest
from mmiobus.memory.access import MemTxResult
from mmiobus.memory.addrspace import FutureRead

from .core import BusCore, Initiator, Pending
from .errors import LimitExceeded

Answer = Callable[[bytes, MemTxResult], None]

PIPELINE_BYTES = 4096  # bytes of accesses sent to one device before the first is answered
QUEUED_OVERHEAD = 32  # what a queued access costs besides its data


class OrderedAccesses:
    """The accesses of ``who``, in order (see the module docstring)."""

    def __init__(self, core: BusCore, who: Initiator) -> None:
        self.core = core
        self.who = who
        self._queue: collections.deque[tuple[DmaRequest, frozenset[int], Answer]] = (
            collections.deque()
        )
        self._running = False
        # The access waited for by callback (BusCore.then), while it is the only one: a CPU's
        # read of a device process's register costs no task.
        self._called_back: tuple[Pending, Answer] | None = None
        self.closed = False
        self.queued_bytes = 0  # data and answers of the accesses in the queue
        self.limit = core.limits.max_device_queue_bytes

    def submit(self, request: DmaRequest, chain: frozenset[int], answer: Answer) -> None:
        """Carry out ``request`` after everything submitted before it; ``answer`` gets its
        outcome (on the loop). ``LimitExceeded`` if it would have to wait behind more than
        ``--max-device-queue`` bytes."""
        if self._running:
            waiting = self._called_back
            if waiting is not None:  # more to carry out: a task takes over, to pipeline them
                self._called_back = None
                asyncio.get_running_loop().create_task(self._run(waiting))
            size = request.size + QUEUED_OVERHEAD
            if self.queued_bytes + size > self.limit:
                raise LimitExceeded(
                    f"{self.who.name} sends accesses faster than the bus carries them out: "
                    f"more than {self.limit} bytes of them wait (--max-device-queue)"
                )
            self.queued_bytes += size
            self._queue.append((request, chain, answer))
            return
        started = self.core.start(self.who, request, chain)
        if not isinstance(started, Pending):
            answer(*started)
            return
        self._running = True
        first = (started, answer)
        if self.core.then(started, lambda out: self._answered(first, out)):
            self._called_back = first
        else:
            asyncio.get_running_loop().create_task(self._run(first))

    def _answered(self, first: tuple[Pending, Answer], out: FutureRead) -> None:
        """The access waited for by callback completed (unless a task took it over)."""
        if self._called_back is not first:
            return
        self._called_back = None
        self._running = False
        if not self.closed:
            first[1](*self.core.completed(first[0], out))

    def close(self) -> None:
        """Stop carrying out what is queued (the initiator went away)."""
        self.closed = True
        if self._called_back is not None:  # no task runs to end the run
            self._called_back = None
            self._running = False
        self._queue.clear()
        self.queued_bytes = 0

    async def _run(self, first: tuple[Pending, Answer]) -> None:
        core = self.core
        waiting: collections.deque[tuple[Pending, Answer]] = collections.deque([first])
        device = self._key(first[0].request)
        in_flight = first[0].request.size  # bytes of the accesses in ``waiting``
        queue = self._queue
        try:
            while (queue or waiting) and not self.closed:
                if queue:
                    request, chain, answer = queue[0]
                    key = self._key(request) if waiting else None
                    pipelined = (
                        key is not None
                        and key is device
                        and in_flight + request.size <= PIPELINE_BYTES
                    )
                    if not waiting or pipelined:
                        queue.popleft()
                        self.queued_bytes -= request.size + QUEUED_OVERHEAD
                        started = core.start(self.who, request, chain)
                        if isinstance(started, Pending):
                            if not waiting:
                                device = self._key(request)
                                in_flight = 0
                            waiting.append((started, answer))
                            in_flight += request.size
                        else:
                            answer(*started)
                        continue
                pending, answer = waiting.popleft()
                in_flight -= pending.request.size
                answer(*(await core.finish(pending)))
        finally:
            self._running = False

    def _key(self, request: DmaRequest) -> object:
        space = self.core.spaces.get(request.address_space)
        if space is None:
            return None
        return self.core.devices.pipeline_key(space, request.addr, request.size)
