"""How long one request holds the server's event loop, seen from another client.

The bus promises that no single request within its default limits holds its event loop for more
than ``LOOP_BOUND`` (100 ms). The loop is not observable from outside, so a second client
measures what it costs: while the request runs, a probe reads RAM as fast as it can, one read at
a time, and records the latency of each read that overlapped the request. A request that holds
the loop makes the probe's read wait for as long as it does.

This is the one wall-clock measurement the tests make, so it is made robust against a loaded
machine: the request is repeated (``runs``) and the *best* run decides (a request that holds the
loop does so every time; a scheduling hiccup does not strike every run), the bound has a
generous margin (``MARGIN``), and the same probe measured while the server is idle is reported
beside it, so a failure says whether the machine itself was slow.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from mmiobus.v1 import bus_pb2, bus_pb2_grpc

LOOP_BOUND = 0.100  # seconds: the documented invariant
MARGIN = 2.5  # the bound asserted is LOOP_BOUND * MARGIN: generous, for loaded CI machines


@dataclass
class Sample:
    """The probe's reads that overlapped one run of the request."""

    latencies: list[float] = field(default_factory=list)
    request_seconds: float = 0.0

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)

    def summary(self) -> str:
        if not self.latencies:
            return f"no probe read overlapped (request took {self.request_seconds * 1000:.0f} ms)"
        return (
            f"worst {self.worst * 1000:.1f} ms, median "
            f"{statistics.median(self.latencies) * 1000:.1f} ms over {len(self.latencies)} reads "
            f"(request took {self.request_seconds * 1000:.0f} ms)"
        )


class LoopProbe:
    """A client that reads ``length`` bytes of RAM at ``addr`` in a loop, in a thread of its
    own, on a channel of its own; ``measure`` runs a request meanwhile."""

    def __init__(self, address: str, addr: int = 0, length: int = 4) -> None:
        self.address = address
        self.request = bus_pb2.RwRequest(addr=addr, read=length)
        self._channel = grpc.insecure_channel(address)
        self._stub = bus_pb2_grpc.BusStub(self._channel)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reads: list[tuple[float, float]] = []  # (start, end) of each probe read
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="loop-probe", daemon=True)
        # The first read opens the connection: not part of any measurement.
        self._stub.Rw(self.request, timeout=30)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                reply = self._stub.Rw(self.request, timeout=60)
                t1 = time.monotonic()
                if reply.result:
                    raise AssertionError(f"the probe's RAM read failed: {reply}")
                with self._lock:
                    self._reads.append((t0, t1))
                    if len(self._reads) > 100_000:
                        del self._reads[:50_000]
        except BaseException as e:  # reported by measure()
            self._error = e

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=70)
        self._channel.close()

    def __enter__(self) -> LoopProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _overlapping(self, start: float, end: float) -> list[float]:
        with self._lock:
            return [t1 - t0 for t0, t1 in self._reads if t1 >= start and t0 <= end]

    def sample(self, request: Callable[[], Any]) -> Sample:
        """Run ``request()`` once; the latencies of the probe reads that overlapped it. Waits
        for the probe read in progress at the end, so that a read the request held counts."""
        start = time.monotonic()
        request()
        end = time.monotonic()
        deadline = end + 70
        while time.monotonic() < deadline and self._error is None:
            with self._lock:
                if self._reads and self._reads[-1][0] > end:
                    break
            time.sleep(0.001)
        if self._error is not None:
            raise AssertionError(f"the probe failed: {self._error}") from self._error
        return Sample(self._overlapping(start, end), end - start)

    def idle(self, seconds: float = 0.3) -> Sample:
        """The probe alone, for ``seconds``: what the machine itself costs."""
        return self.sample(lambda: time.sleep(seconds))

    def measure(self, request: Callable[[], Any], runs: int = 3) -> list[Sample]:
        """``runs`` samples of ``request`` (see ``assert_loop_free``)."""
        return [self.sample(request) for _ in range(runs)]


def assert_loop_free(
    address: str,
    request: Callable[[], Any],
    *,
    runs: int = 3,
    what: str = "the request",
    probe_addr: int = 0,
) -> list[Sample]:
    """Assert that ``request()`` does not hold the server's event loop for more than
    ``LOOP_BOUND`` (times ``MARGIN``), measured as the latency of another client's RAM reads
    (at ``probe_addr``) meanwhile, in the best of ``runs`` runs. Returns the samples."""
    with LoopProbe(address, probe_addr) as probe:
        idle = probe.idle()
        samples = probe.measure(request, runs)
    best = min(samples, key=lambda s: s.worst)
    bound = LOOP_BOUND * MARGIN
    assert best.worst <= bound, (
        f"{what} held the server's event loop: the best of {runs} runs made another client's "
        f"RAM read wait {best.worst * 1000:.0f} ms (bound {LOOP_BOUND * 1000:.0f} ms, asserted "
        f"with margin as {bound * 1000:.0f} ms). Runs: "
        + "; ".join(s.summary() for s in samples)
        + f". Idle: {idle.summary()}"
    )
    return samples
