"""Raw ``Trace`` streams read in background threads, and the server's log records that tell
when a subscriber has joined.

The streams use the generated stub directly (not the client library) so that the tests see the
wire as it is: one TraceBatch per stream message, the status of a refused request, and a
subscriber that does not read at all.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable

import grpc
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc

from support.servers import ServerProcess
from support.wait import TIMEOUT, wait_for

# -- the server log --------------------------------------------------------------------------


def log_events(server: ServerProcess, event: str) -> list[dict]:
    """The server's JSON log records (`--log-format json`) whose event is ``event``."""
    out = []
    for line in server.log().splitlines():
        if event not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == event:
            out.append(record)
    return out


def joined(server: ServerProcess) -> int:
    return len(log_events(server, "trace subscriber joined"))


def left(server: ServerProcess) -> int:
    return len(log_events(server, "trace subscriber left"))


# -- trace streams ---------------------------------------------------------------------------


class Subscription:
    """A raw ``Trace`` stream. It joins at once (``__init__`` returns once the server has
    subscribed it); with ``read=False`` nobody reads it until ``resume()``. Received batches
    are kept in ``batches``; ``events`` is all their events in order."""

    def __init__(self, server: ServerProcess, request: pb.TraceRequest, read: bool = True):
        self.server = server
        self.channel = grpc.insecure_channel(server.tcp)
        self.stub = bus_pb2_grpc.BusStub(self.channel)
        self.batches: list[pb.TraceBatch] = []
        self.events: list[pb.TraceEvent] = []
        self.error: grpc.RpcError | None = None
        self.ended = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        before = joined(server)
        self.call = self.stub.Trace(request)
        if read:
            self.resume()
        wait_for(
            lambda: joined(server) > before or self.ended,
            message="the trace subscriber never joined",
        )
        if self.ended:
            self.channel.close()
            raise AssertionError(f"the server ended the trace at once: {self.error}")

    def resume(self) -> None:
        """Start reading the stream (in a background thread)."""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for batch in self.call:
                with self._cond:
                    self.batches.append(batch)
                    self.events.extend(batch.events)
                    self._cond.notify_all()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def wait(self, pred: Callable[[pb.TraceEvent], bool], timeout: float = TIMEOUT) -> int:
        """Wait until some event satisfies ``pred``; returns the index of the first one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            start = 0
            while True:
                for i in range(start, len(self.events)):
                    if pred(self.events[i]):
                        return i
                start = len(self.events)
                left_ = deadline - time.monotonic()
                if self.ended or left_ <= 0:
                    raise AssertionError(
                        f"the awaited trace event never came (ended={self.ended}, "
                        f"error={self.error}, {len(self.events)} events)"
                    )
                self._cond.wait(min(left_, 0.5))

    def until(self, marker: pb.TraceEvent | Callable[[pb.TraceEvent], bool]) -> list:
        """The events before the first one that satisfies ``marker`` (waiting for it)."""
        i = self.wait(marker)
        with self._cond:
            return list(self.events[:i])

    def snapshot(self) -> list[pb.TraceEvent]:
        with self._cond:
            return list(self.events)

    def close(self) -> None:
        self.call.cancel()
        if self._thread is not None:
            self._thread.join(TIMEOUT)
        self.channel.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def at(addr: int, write: bool | None = None) -> Callable[[pb.TraceEvent], bool]:
    """An event predicate: an access (not a gap) at ``addr`` (of that direction)."""
    return lambda e: not e.lost and e.addr == addr and (write is None or e.write == write)


def trace_error(server: ServerProcess, request: pb.TraceRequest) -> grpc.RpcError:
    """The error a refused Trace request ends with (fails if the server accepts it)."""
    with grpc.insecure_channel(server.tcp) as channel:
        call = bus_pb2_grpc.BusStub(channel).Trace(request, timeout=TIMEOUT)
        try:
            batch = next(call)
        except grpc.RpcError as e:
            return e
        call.cancel()
        raise AssertionError(f"the server accepted {request}: it sent {batch}")


def accesses(events: Iterable[pb.TraceEvent]) -> list[pb.TraceEvent]:
    """The access events (not the gaps)."""
    return [e for e in events if not e.lost]


def summary(e: pb.TraceEvent) -> tuple:
    """What a client can check of an event: (address space, addr, size, write, data, result)."""
    return (e.address_space, e.addr, e.size, e.write, e.data, e.result)
