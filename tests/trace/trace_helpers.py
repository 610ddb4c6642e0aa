"""Harness for the tracing tests: machine descriptions, raw Trace and WatchTopology streams read
in background threads, the server log (to know when a subscriber has joined), flat views.

The streams use the generated stub directly (not the client library) so that the tests see the
wire as it is: one TraceBatch per stream message, the status of a refused request, and a
subscriber that does not read at all.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc
import yaml
from mmiobus.client import Bus
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.servers import MMIOBUS, ServerProcess

SCRATCH = "mmiobus.devices.models.scratch:ScratchRam"
DMA_ENGINE = "mmiobus.devices.models.dma:DmaEngine"

HERE = Path(__file__).resolve().parent
# Device processes import trace_helpers_models by name.
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)}
TAGGED_DMA = "trace_helpers_models:TaggedDmaEngine"

# DmaEngine registers and control bits (see mmiobus.devices.models.dma).
SRC_LO, SRC_HI, DST_LO, DST_HI, LEN, CTRL, STATUS, RESULT = range(0, 0x20, 4)
START, IRQ_ENABLE, SYNC = 1, 2, 4
BUSY, DONE, ERROR = 1, 2, 4

TIMEOUT = 30.0  # generous: only to turn a hang into a failure


def mmio(name: str, addr: int, size: int, device: Any, lo: int = 1, hi: int = 8) -> dict:
    """An mmio region served by ``device`` (a device name, or ``{class: ..., args: ...}``)."""
    return {
        "name": name,
        "kind": "mmio",
        "addr": addr,
        "size": size,
        "valid": {"min": lo, "max": hi},
        "impl": {"min": lo, "max": hi},
        "endianness": "little",
        "device": device,
    }


def machine_yaml(
    subregions: list[dict], extra_spaces: Iterable[tuple[str, list[dict]]] = ()
) -> str:
    """A little-endian machine: address space `memory` over container `system` holding
    ``subregions``; each extra ``(name, subregions)`` is one more address space whose root is
    the container `NAME-root`."""
    spaces = [{"name": "memory", "root": "system"}]
    regions: list[dict] = [
        {"name": "system", "kind": "container", "size": "2**64", "subregions": subregions}
    ]
    for name, subs in extra_spaces:
        spaces.append({"name": name, "root": f"{name}-root"})
        regions.append(
            {"name": f"{name}-root", "kind": "container", "size": 1 << 32, "subregions": subs}
        )
    return yaml.safe_dump(
        {"endianness": "little", "address_spaces": spaces, "regions": regions}, sort_keys=False
    )


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


def wait_for(what: Callable[[], Any], timeout: float = TIMEOUT, message: str = "") -> Any:
    """Poll ``what()`` until it is truthy and return that value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        time.sleep(0.005)


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


# -- flat views ------------------------------------------------------------------------------


def flat_key(fr: pb.FlatRange) -> tuple:
    return (fr.start, fr.size, fr.region, fr.offset, fr.readonly, fr.nonvolatile)


def flat_view(bus: Bus, space: str) -> list[tuple]:
    """An address space's flat view from GetTopology, as comparable tuples."""
    topology = bus.topology(flat_views=True)
    for s in topology.address_spaces:
        if s.id == space:
            return [flat_key(fr) for fr in s.flat_view]
    raise AssertionError(f"no address space {space!r} in {[s.id for s in topology.address_spaces]}")


def served_by(bus: Bus, space: str, addr: int) -> tuple[str, int]:
    """(region id, offset in it) that GetTopology's flat view says serves ``addr``."""
    for start, size, region, offset, *_ in flat_view(bus, space):
        end = start + (size if size != (1 << 64) - 1 else 1 << 64)
        if start <= addr < end:
            return region, offset + addr - start
    return "", addr


def apply_changes(view: list[tuple], change: pb.TopologyChange) -> list[tuple]:
    """``view`` after the region_del and region_add changes of ``change``."""
    out = list(view)
    for c in change.changes:
        key = flat_key(c.range)
        if c.add:
            out.append(key)
        else:
            assert key in out, f"region_del of {key}, which is not in the view {out}"
            out.remove(key)
    return sorted(out)


class Watch:
    """A raw ``WatchTopology`` stream read in a background thread."""

    def __init__(self, server: ServerProcess, address_space: str = ""):
        self.channel = grpc.insecure_channel(server.tcp)
        self.call = bus_pb2_grpc.BusStub(self.channel).WatchTopology(
            pb.WatchTopologyRequest(address_space=address_space)
        )
        self.messages: list[pb.TopologyChange] = []
        self.error: grpc.RpcError | None = None
        self.ended = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                with self._cond:
                    self.messages.append(message)
                    self._cond.notify_all()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def wait(self, count: int, timeout: float = TIMEOUT) -> list[pb.TopologyChange]:
        """Wait until ``count`` messages have come; returns all of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left_ = deadline - time.monotonic()
                if self.ended or left_ <= 0:
                    raise AssertionError(
                        f"expected {count} topology messages, got {len(self.messages)} "
                        f"(ended={self.ended}, error={self.error})"
                    )
                self._cond.wait(min(left_, 0.5))
            return list(self.messages)

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(TIMEOUT)
        self.channel.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mmiobus_cmd(*args: str) -> list[str]:
    """The command line that runs the installed ``mmiobus`` script."""
    return [MMIOBUS, *args]
