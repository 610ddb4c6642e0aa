"""A line protocol with a peer process: commands go out one line each, answers come back one
line each in the same order, and event lines may arrive at any time, between answers or while
nothing is asked.

QEMU's qtest protocol is one (``readl 0x9000018`` -> ``OK 0x...``; ``IRQ raise 1`` events), and
so is the RTL simulator's (``mmiobus.rtl.protocol``).

``call`` waits for its answer synchronously, on the caller's thread: a peer answers in tens of
microseconds, less than handing the answer through the event loop would cost, and a device
handler that returns its value at once lets the device runner answer the bus at once. ``post``
sends a command whose answer is not waited for (it is read, and a failure logged, later).
Between calls, the event loop reads what the peer sends by itself (``start``): interrupt
events while the bus is quiet, and the end of the connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import structlog

log = structlog.get_logger("mmiobus.peers")

ANSWER_TIMEOUT = 10.0  # a peer that does not answer for this long is taken for hung


class ChannelClosed(Exception):
    """The peer closed its end (it exited, or crashed), or stopped answering."""


class LineChannel:
    """Commands and answers over ``sock`` (a connected stream socket); lines for which
    ``is_event`` is true go to ``on_event``. ``initial`` is what was already read from it."""

    def __init__(
        self,
        sock: socket.socket,
        is_event: Callable[[str], bool],
        on_event: Callable[[str], None] = lambda line: None,
        *,
        initial: bytes = b"",
        timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self.sock = sock
        sock.settimeout(timeout)
        self._is_event = is_event
        self.on_event = on_event
        self._buffer = bytearray(initial)
        self._unanswered = 0  # answers to posted commands still to come
        self.closed: ChannelClosed | None = None
        self._closed_future: asyncio.Future[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the event loop's side ------------------------------------------------------------------

    def start(self) -> None:
        """Have the running loop read what the peer sends between calls."""
        self._loop = asyncio.get_running_loop()
        self._closed_future = self._loop.create_future()
        if self.closed is not None:
            self._closed_future.set_result(str(self.closed))
        else:
            self._loop.add_reader(self.sock.fileno(), self._readable)
            self._lines(want=False)  # events read with the first line, if any

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.close(f"the connection to the peer failed: {e}")
            return
        if not data:
            self.close("the peer closed its end")
            return
        self._buffer += data
        self._lines(want=False)

    async def wait_closed(self) -> str:
        """Wait until the peer goes away (``start`` first); why."""
        assert self._closed_future is not None, "start() the channel first"
        return await asyncio.shield(self._closed_future)

    # -- commands -------------------------------------------------------------------------------

    def _lines(self, want: bool) -> str | None:
        """Take complete lines from the buffer: events go to ``on_event``; answers to posted
        commands (they come first: the peer answers in order) are checked; with ``want``,
        the next answer after them is returned once read (None before)."""
        while (end := self._buffer.find(b"\n")) >= 0:
            line = self._buffer[:end].decode(errors="replace").rstrip("\r")
            del self._buffer[: end + 1]
            if self._is_event(line):
                self.on_event(line)
            elif self._unanswered:
                self._unanswered -= 1
                if not line.startswith("OK"):
                    log.warning("a command not waited for failed", answer=line)
            elif want:
                return line
            else:
                log.warning("the peer answered what nobody asked", answer=line)
        return None

    def _check(self) -> None:
        if self.closed is not None:
            raise self.closed

    def post(self, line: str) -> None:
        """Send ``line`` without waiting for its answer."""
        self._check()
        self._send(line)
        self._unanswered += 1

    def call(self, line: str) -> str:
        """Send ``line`` and wait (blocking) for its answer; ``ChannelClosed`` if the peer
        goes away or stays silent for the timeout (then the channel is closed)."""
        self._check()
        self._send(line)
        while True:
            answer = self._lines(want=True)
            if answer is not None:
                return answer
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                self.close("the peer stopped answering")
                raise self.closed from None  # type: ignore[misc]
            except OSError as e:
                self.close(f"the connection to the peer failed: {e}")
                raise self.closed from None  # type: ignore[misc]
            if not data:
                self.close("the peer closed its end")
                raise self.closed  # type: ignore[misc]
            self._buffer += data

    def _send(self, line: str) -> None:
        try:
            self.sock.sendall(line.encode() + b"\n")
        except OSError as e:
            self.close(f"the connection to the peer failed: {e}")
            raise self.closed from None  # type: ignore[misc]

    def close(self, reason: str) -> None:
        """Stop: every later command fails with ``ChannelClosed(reason)`` (idempotent)."""
        if self.closed is not None:
            return
        self.closed = ChannelClosed(reason)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.sock.fileno())
        if self._closed_future is not None and not self._closed_future.done():
            self._closed_future.set_result(reason)
        self.sock.close()
