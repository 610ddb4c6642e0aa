"""The bus as a CPU engine sees it when the bus is on an asyncio loop in another thread: in
another process (``SessionBus``: DMA requests on the CPU's device session) or in this one (the
server's in-process CPUs, see ``mmiobus.server.cpus``).

Reads wait for their answer; writes are posted: never waited for, and answered only if they
fail. The bus carries out one initiator's accesses in order and answers in order, so when a
read's answer comes, every write before it is done: a read is a barrier without waiting twice.
A posted write that failed is reported by the next read (or ``flush``), as the Bus seam
(``cpu.bus``) says.

Writes are held back and sent with the next read, or when the engine pushes them: at the end
of each slice, before it waits for an interrupt, before it touches a board device of its own
(so that, say, an interrupt cleared at a device is cleared before the interrupt controller
hears of it) and when it stops. A guest that prints a character and polls the line status
then costs one crossing and one message, not two; a write waits at most one slice (or
``MAX_HELD`` writes) to go out.

The engine calls ``read``/``write`` from its own thread; requests cross to the loop with
``call_soon_threadsafe``; answers come back through a ``queue.SimpleQueue``.

Waiting for an answer, the engine polls before it sleeps, as QEMU's event loop polls
(``poll-max-ns``) and KVM polls a halted vCPU: on a virtual machine, a core that goes idle
takes tens of microseconds to wake, once for each hand-off of every access, which is more than
the access itself costs. Polling keeps the core busy while yielding it to any thread that has
work (the loop's, gRPC's), so they run at once. The polling window adapts: it starts at 0,
doubles (from 4 us) after each wait that outlasted it but ended within ``poll_max_ns``, and
falls back to 0 after a wait longer than that (a slow device is waited for asleep).
``poll_max_ns = 0`` never polls (``--poll-max-us 0``). By default a CPU polls only while its
process's threads share one core (``poll_max``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import time

from mmiobus.devices.session import RemoteHost
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.wire import result_names

from .bus import BusFault

_LOST = object()
FIRST_ID = 1 << 48  # ids of a CPU's requests, apart from its device session's own
MAX_UNCONFIRMED = 65536  # posted writes remembered (for their fault's address) between barriers
MAX_HELD = 256  # writes held back before they are sent without waiting for a read
POLL_MAX_NS = 1_000_000  # the longest polling window (the default of --poll-max-us)
POLL_START_NS = 4_000  # the first window after a wait that outlasted none


def poll_max(asked: int | None, pinned: bool) -> int:
    """The longest polling window, in ns: ``asked`` (``--poll-max-us``), or by default
    ``POLL_MAX_NS`` while the process's threads share one core, where polling takes nothing
    from them (it yields them the core), and 0 when they are spread over the cores (``--no-pin``:
    it would keep a core from them)."""
    if asked is not None:
        return asked
    return POLL_MAX_NS if pinned else 0


_clock = time.perf_counter_ns
_yield = getattr(os, "sched_yield", lambda: time.sleep(0))

Reply = tuple[int, bytes, int]  # (request id, bytes read, MemTxResult bits)
Access = tuple[int, int, int, bytes | None]  # (request id, addr, size, bytes to write or None)


class BusLost(BusFault):
    """The bus went away: no access can complete any more."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, reason)
        self.addr, self.size, self.is_write, self.reason, self.posted = 0, 0, False, reason, False


class PipelinedBus:
    """The Bus seam over an in-order, answer-in-order transport (see the module docstring);
    subclasses say how requests are issued (``_issue``, called on the engine's thread with
    accesses to carry out in order) and put each answer into ``self.replies`` as
    ``(id, data, result)``."""

    def __init__(self, poll_max_ns: int = POLL_MAX_NS) -> None:
        self.replies: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.poll_max_ns = poll_max_ns
        self.poll_ns = 0  # the polling window now (see the module docstring)
        self._ids = itertools.count(FIRST_ID)
        self._posted: dict[int, tuple[int, int]] = {}  # id -> (addr, size) of writes in flight
        self._held: list[Access] = []  # writes not sent yet
        self._fault: BusFault | None = None
        self.lost_reason = ""

    def _issue(self, accesses: list[Access]) -> None:
        raise NotImplementedError

    def _take(self) -> Reply:
        replies = self.replies
        reply = replies.get() if not self.poll_max_ns or not replies.empty() else self._poll()
        if reply is _LOST:
            self.replies.put(_LOST)  # every later wait ends too
            raise BusLost(self.lost_reason or "the bus went away")
        return reply  # type: ignore[return-value]

    def _poll(self) -> object:
        """The next answer, polled for up to the window, then waited for asleep; the window
        adapts to how long the wait took."""
        replies, start = self.replies, _clock()
        end = start + self.poll_ns
        while _clock() < end:
            _yield()  # the core to any thread of ours with work, at once
            if not replies.empty():
                return replies.get()
        reply = replies.get()
        if _clock() - start > self.poll_max_ns:
            self.poll_ns = 0
        else:
            self.poll_ns = min(max(2 * self.poll_ns, POLL_START_NS), self.poll_max_ns)
        return reply

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
        accesses, self._held = self._held, []
        accesses.append((rid, addr, size, None))
        self._issue(accesses)
        _rid, data, result = self._wait(rid)
        self._raise_posted_fault()
        if result:
            raise BusFault(addr, size, False, result_names(result))
        return int.from_bytes(data, "little")

    def write(self, addr: int, size: int, value: int) -> None:
        if len(self._posted) >= MAX_UNCONFIRMED:
            self.flush()  # bound what is remembered of writes not known to be done
        rid = next(self._ids)
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        self._held.append((rid, addr, size, data))
        self._posted[rid] = (addr, size)
        if len(self._held) >= MAX_HELD:
            self.push()

    def push(self) -> None:
        """Send the writes held back, without waiting for them."""
        if self._held:
            accesses, self._held = self._held, []
            self._issue(accesses)

    def flush(self) -> None:
        """Wait until every posted write is done (a zero-length read after them answers when
        they are)."""
        if self._posted:
            rid = next(self._ids)
            accesses, self._held = self._held, []
            accesses.append((rid, 0, 0, None))
            self._issue(accesses)
            self._wait(rid)
        self._raise_posted_fault()

    def lost(self, reason: str) -> None:
        """The bus went away: every access waiting, and every later one, fails (any thread)."""
        self.lost_reason = reason
        self.replies.put(_LOST)


class SessionBus(PipelinedBus):
    """DMA requests on a device session (a CPU in its own process)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: RemoteHost,
        address_space: str,
        poll_max_ns: int,  # poll_max() says how long
    ):
        super().__init__(poll_max_ns)
        self._loop = loop
        self._host = host
        self._space = address_space

    def _issue(self, accesses: list[Access]) -> None:
        space, requests = self._space, []
        for rid, addr, size, data in accesses:
            if data is None:
                requests.append(pb.DmaRequest(id=rid, address_space=space, addr=addr, read=size))
            else:
                requests.append(pb.DmaRequest(id=rid, address_space=space, addr=addr,
                                              write=data, posted=True))  # fmt: skip
        self._loop.call_soon_threadsafe(self._send, requests)

    def _send(self, requests: list[pb.DmaRequest]) -> None:
        send, answer = self._host.send_dma, self._answer
        for req in requests:
            send(req, answer)

    def _answer(self, reply: pb.DmaReply) -> None:
        self.replies.put((reply.id, reply.data, reply.result))
