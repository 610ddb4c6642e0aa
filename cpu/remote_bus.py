"""The bus as a CPU engine sees it when the bus is on an asyncio loop in another thread: in
another process (``SessionBus``: DMA requests on the CPU's device session) or in this one (the
server's in-process CPUs, see ``mmiobus.server.cpus``).

Reads wait for their answer; writes are posted: issued at once, never waited for, and answered
only if they fail. The bus carries out one initiator's accesses in order and answers in order,
so when a read's answer comes, every write before it is done: a read is a barrier without
waiting twice. A posted write that failed is reported by the next read (or ``flush``), as the
Bus seam (``cpu.bus``) says.

The engine calls ``read``/``write`` from its own thread; requests cross to the loop with
``call_soon_threadsafe``; answers come back through a ``queue.SimpleQueue``.
"""

from __future__ import annotations

import asyncio
import itertools
import queue

from mmiobus.devices.runner import RemoteHost
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.wire import result_names

from .bus import BusFault

_LOST = object()
FIRST_ID = 1 << 48  # ids of a CPU's requests, apart from its device session's own
MAX_UNCONFIRMED = 65536  # posted writes remembered (for their fault's address) between barriers

Reply = tuple[int, bytes, int]  # (request id, bytes read, MemTxResult bits)


class BusLost(BusFault):
    """The bus went away: no access can complete any more."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, reason)
        self.addr, self.size, self.is_write, self.reason, self.posted = 0, 0, False, reason, False


class PipelinedBus:
    """The Bus seam over an in-order, answer-in-order transport (see the module docstring);
    subclasses say how a request is issued (``_issue``, called on the engine's thread) and put
    each answer into ``self.replies`` as ``(id, data, result)``."""

    def __init__(self) -> None:
        self.replies: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._ids = itertools.count(FIRST_ID)
        self._posted: dict[int, tuple[int, int]] = {}  # id -> (addr, size) of writes in flight
        self._fault: BusFault | None = None
        self.lost_reason = ""

    def _issue(self, rid: int, addr: int, size: int, data: bytes | None) -> None:
        raise NotImplementedError

    def _take(self) -> Reply:
        reply = self.replies.get()
        if reply is _LOST:
            self.replies.put(_LOST)  # every later wait ends too
            raise BusLost(self.lost_reason or "the bus went away")
        return reply  # type: ignore[return-value]

    def _wait(self, rid: int) -> Reply:
        """The answer to request ``rid``; the answers before it are failed posted writes."""
        while True:
            reply = self._take()
            if reply[0] == rid:
                self._posted.clear()  # everything before it is done
                return reply
            if self._fault is None:
                addr, size = self._posted.get(reply[0], (0, 0))
                self._fault = BusFault(addr, size, True, result_names(reply[2]), posted=True)

    def _raise_posted_fault(self) -> None:
        fault, self._fault = self._fault, None
        if fault is not None:
            raise fault

    def read(self, addr: int, size: int) -> int:
        rid = next(self._ids)
        self._issue(rid, addr, size, None)
        _rid, data, result = self._wait(rid)
        self._raise_posted_fault()
        if result:
            raise BusFault(addr, size, False, result_names(result))
        return int.from_bytes(data, "little")

    def write(self, addr: int, size: int, value: int) -> None:
        rid = next(self._ids)
        self._issue(rid, addr, size, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        if len(self._posted) >= MAX_UNCONFIRMED:
            self.flush()  # bound what is remembered of writes not known to be done
        self._posted[rid] = (addr, size)

    def flush(self) -> None:
        """Wait until every posted write is done (a zero-length read after them answers when
        they are)."""
        if self._posted:
            rid = next(self._ids)
            self._issue(rid, 0, 0, None)
            self._wait(rid)
        self._raise_posted_fault()

    def lost(self, reason: str) -> None:
        """The bus went away: every access waiting, and every later one, fails (any thread)."""
        self.lost_reason = reason
        self.replies.put(_LOST)


class SessionBus(PipelinedBus):
    """DMA requests on a device session (a CPU in its own process)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: RemoteHost, address_space: str):
        super().__init__()
        self._loop = loop
        self._host = host
        self._space = address_space

    def _issue(self, rid: int, addr: int, size: int, data: bytes | None) -> None:
        if data is None:
            req = pb.DmaRequest(id=rid, address_space=self._space, addr=addr, read=size)
        else:
            req = pb.DmaRequest(id=rid, address_space=self._space, addr=addr, write=data,
                                posted=True)  # fmt: skip
        self._loop.call_soon_threadsafe(self._host.send_dma, req, self._answer)

    def _answer(self, reply: pb.DmaReply) -> None:
        self.replies.put((reply.id, reply.data, reply.result))
