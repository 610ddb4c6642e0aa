"""One initiator's accesses carried out in the order it issued them — a device's DMA, a CPU's
loads and stores — each answered in that order.

An access that goes to the same remote device as those still waiting for their answers is sent
at once (the device's stream keeps them in order, and a CPU's store followed by a load of the
same UART costs one round trip, not two); any other waits until those are answered, so that
RAM and other devices see the accesses in order. Accesses that complete at once (RAM, devices
in the server) cost no task.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from mmiobus.devices.host import DmaRequest
from mmiobus.memory.access import MemTxResult

from .core import BusCore, Initiator, Pending

Answer = Callable[[bytes, MemTxResult], None]


class OrderedAccesses:
    """The accesses of ``who``, in order (see the module docstring)."""

    def __init__(self, core: BusCore, who: Initiator) -> None:
        self.core = core
        self.who = who
        self._queue: collections.deque[tuple[DmaRequest, frozenset[int], Answer]] = (
            collections.deque()
        )
        self._running = False
        self.closed = False

    def submit(self, request: DmaRequest, chain: frozenset[int], answer: Answer) -> None:
        """Carry out ``request`` after everything submitted before it; ``answer`` gets its
        outcome (on the loop)."""
        if self._running:
            self._queue.append((request, chain, answer))
            return
        started = self.core.start(self.who, request, chain)
        if not isinstance(started, Pending):
            answer(*started)
            return
        self._running = True
        asyncio.get_running_loop().create_task(self._run((started, answer)))

    def close(self) -> None:
        """Stop carrying out what is queued (the initiator went away)."""
        self.closed = True
        self._queue.clear()

    async def _run(self, first: tuple[Pending, Answer]) -> None:
        core = self.core
        waiting: collections.deque[tuple[Pending, Answer]] = collections.deque([first])
        device = self._key(first[0].request)
        queue = self._queue
        try:
            while (queue or waiting) and not self.closed:
                if queue:
                    request, chain, answer = queue[0]
                    key = self._key(request) if waiting else None
                    if not waiting or (key is not None and key is device):
                        queue.popleft()
                        started = core.start(self.who, request, chain)
                        if isinstance(started, Pending):
                            if not waiting:
                                device = self._key(request)
                            waiting.append((started, answer))
                        else:
                            answer(*started)
                        continue
                pending, answer = waiting.popleft()
                answer(*(await core.finish(pending)))
        finally:
            self._running = False

    def _key(self, request: DmaRequest) -> object:
        space = self.core.spaces.get(request.address_space)
        if space is None:
            return None
        return self.core.devices.pipeline_key(space, request.addr, request.size)
