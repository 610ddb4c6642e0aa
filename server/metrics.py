"""The bus's metrics, for Prometheus (``mmiobus serve --metrics ADDR``).

The hot paths count into plain dicts (``BusMetrics``): each access served, by address space,
region kind, direction, result and initiator (``services.rw`` for clients, ``BusCore`` for
devices' DMA and CPUs); the latency of each access forwarded to a device process, from queueing
to answer, in fixed histogram buckets (its ``RemoteSession``). A collector reads those dicts, and what the server keeps anyway
(device counters, trace subscribers, the topology's generation), only when someone scrapes, and
``prometheus_client`` writes them in the Prometheus text format or OpenMetrics, as the scraper
asks. With no ``--metrics``, ``BusCore.metrics`` is None and the hot paths skip their one check.

The endpoint (``MetricsEndpoint``) answers HTTP GET on the server's own event loop, on TCP or a
unix socket (so that ``mmiobus up`` reads a bus in another network namespace).
"""

from __future__ import annotations

import asyncio
import errno
import os
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from mmiobus.endpoints import AddressError, parse_address
from mmiobus.memory.region import MemoryRegion, RegionKind
from mmiobus.wire import result_names

if TYPE_CHECKING:
    from mmiobus.memory.addrspace import AddressSpace

    from .core import BusCore, Pending

log = structlog.get_logger("mmiobus.server")

DEFAULT_PORT = 9170
MAX_DEVICES = 1024  # devices whose latency is kept (the oldest go first)
# Upper bounds of the latency buckets, in nanoseconds: 10 us (a device on this host answers a
# read in tens of microseconds) to 10 s (past any sensible deadline).
BUCKETS_NS = tuple(
    int(x * 1000) for x in (10, 25, 50, 100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 1e5, 1e6, 1e7)
)
_KINDS = {
    RegionKind.RAM: "ram",
    RegionKind.ROM: "rom",
    RegionKind.ROMD: "romd",
    RegionKind.MMIO: "mmio",
}

# An access as counted: (address space id, region kind, is a write, result bits, initiator).
AccessKey = tuple[str, str, bool, int, str]


class BusMetrics:
    """What the hot paths count (see the module docstring). Everything here runs on the
    server's event loop; the collector reads it there too."""

    def __init__(self, core: BusCore) -> None:
        self.core = core
        self.accesses: dict[AccessKey, int] = {}
        self.latency: dict[str, list[int]] = {}  # device -> counts per bucket, then the sum
        self._kinds: dict[MemoryRegion, str] = {}  # a region's kind, looked up once

    def _learn(self, mr: MemoryRegion) -> str:
        """``mr``'s kind, remembered (regions come and go: at most 4096 are)."""
        if len(self._kinds) >= 4096:
            self._kinds.clear()
        kind = self._kinds[mr] = _KINDS.get(mr.kind, "unassigned")
        return kind

    def _kind(self, mr: MemoryRegion) -> str:
        kind = _KINDS.get(mr.kind, "unassigned")
        return "rom" if kind == "ram" and mr.readonly else kind

    def _space(self, space: AddressSpace) -> str:
        return self.core.describer.space_ids.get(id(space), space.name)

    def client(self, accesses: Sequence[Any], results: Any) -> None:
        """Count a client request's accesses (``services.rw`` planned accesses) with their
        result messages, in the same order."""
        counts = self.accesses
        kinds = self._kinds
        last: Any = None
        space_id: str = ""
        view: Any = None
        for entry, out in zip(accesses, results, strict=False):
            req, space, _attrs, _data, write = entry
            if space is not last:
                last, space_id, view = space, self._space(space), space.current_map
            addr = req.addr
            fr = view.mru
            if not fr.start <= addr < fr.end:
                fr = view.lookup(addr)
            if fr is None:
                kind = "unassigned"
            else:
                mr = fr.mr
                kind = kinds.get(mr) or self._learn(mr)
                if kind == "ram" and mr.readonly:
                    kind = "rom"
            key = (space_id, kind, write, out.result, "client")
            counts[key] = counts.get(key, 0) + 1

    def initiated(self, p: Pending, result: int) -> None:
        """Count an access a device (its DMA) or a CPU made (``BusCore._complete``)."""
        request = p.request
        fr = p.view.lookup(request.addr)
        kind = "unassigned" if fr is None else self._kind(fr.mr)
        key = (self._space(p.space), kind, request.data is not None, int(result), p.who.name)
        self.accesses[key] = self.accesses.get(key, 0) + 1

    def observe(self, device: str, ns: int) -> None:
        """One access forwarded to device process ``device`` was answered ``ns`` nanoseconds
        after it was queued (``RemoteSession``)."""
        counts = self.latency.get(device)
        if counts is None:
            if len(self.latency) >= MAX_DEVICES:  # names come and go: forget the oldest
                del self.latency[next(iter(self.latency))]
            # A count per bucket, +Inf last, then the sum of the latencies.
            counts = self.latency[device] = [0] * (len(BUCKETS_NS) + 2)
        counts[bisect_left(BUCKETS_NS, ns)] += 1
        counts[-1] += ns


class BusCollector:
    """The ``prometheus_client`` collector of one bus: reads the counters when scraped."""

    def __init__(self, metrics: BusMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m = self.metrics
        core = m.core
        accesses = CounterMetricFamily(
            "mmiobus_accesses",
            "Accesses the bus served, by address space, region kind, direction, result and "
            "initiator (client, a device's DMA, a CPU)",
            labels=["address_space", "kind", "direction", "result", "initiator"],
        )
        for (space, kind, write, result, who), n in list(m.accesses.items()):
            direction = "write" if write else "read"
            accesses.add_metric([space, kind, direction, result_names(result), who], n)
        yield accesses

        latency = HistogramMetricFamily(
            "mmiobus_forwarded_access_latency_seconds",
            "How long accesses forwarded to a device waited for its answer",
            labels=["device"],
        )
        for device, counts in list(m.latency.items()):
            buckets, total = [], 0
            for bound, n in zip((*BUCKETS_NS, None), counts[:-1], strict=True):
                total += n
                buckets.append(("+Inf" if bound is None else repr(bound / 1e9), total))
            latency.add_metric([device], buckets, counts[-1] / 1e9)
        yield latency

        registry = core.devices
        per_device: dict[str, dict[str, int]] = {
            name: dict(counters) for name, counters in registry.ended.items()
        }
        for attached_device in registry.attached():
            totals = per_device.setdefault(attached_device.name, {})
            for key, n in attached_device.counters.items():
                totals[key] = totals.get(key, 0) + n
        for name, what, key in (
            ("mmiobus_device_accesses", "Accesses forwarded to each device", "accesses"),
            ("mmiobus_deadlines_missed", "Forwarded accesses its device did not answer in "
             "time (each failed with MEMTX_ERROR)", "timeouts"),
            ("mmiobus_device_dma_requests", "DMA requests each device made", "dma"),
        ):  # fmt: skip
            family = CounterMetricFamily(name, what, labels=["device"])
            for device_name, totals in sorted(per_device.items()):
                family.add_metric([device_name], totals.get(key, 0))
            yield family

        attached = GaugeMetricFamily(
            "mmiobus_devices_attached",
            "Devices attached now: processes (remote), models the server runs, CPUs",
            labels=["where"],
        )
        attached.add_metric(["remote"], len(registry.sessions))
        attached.add_metric(["server"], len(registry.in_process))
        attached.add_metric(["cpu"], len(registry.cpus))
        yield attached

        hub = core.trace
        sent, lost = hub.ended_sent, hub.ended_lost
        for sub in list(hub.subscribers):
            sent += sub.sent
            lost += sub.lost_total
        events = CounterMetricFamily(
            "mmiobus_trace_events",
            "Trace events sent to subscribers, and lost by subscribers that fell behind",
            labels=["outcome"],
        )
        events.add_metric(["sent"], sent)
        events.add_metric(["lost"], lost)
        yield events
        yield GaugeMetricFamily(
            "mmiobus_trace_subscribers", "Trace subscribers now", value=len(hub.subscribers)
        )
        yield GaugeMetricFamily(
            "mmiobus_topology_generation",
            "Topology commits that re-rendered the flat views since the server started",
            value=core.machine.system.generation,
        )


class MetricsListenError(Exception):
    """The metrics endpoint could not listen where it was asked to."""


def metrics_address(text: str) -> str:
    """A metrics endpoint address, normalised: ``HOST:PORT`` (a missing port is 9170, 0 any
    free one) or ``unix:PATH``; ``ValueError`` saying what to write."""
    try:
        return parse_address(text, DEFAULT_PORT)
    except AddressError as e:
        raise ValueError(str(e)) from None


class MetricsEndpoint:
    """HTTP ``GET /metrics`` on the server's event loop, for one bus."""

    def __init__(self, metrics: BusMetrics) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.process_collector import ProcessCollector

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BusCollector(metrics))  # type: ignore[arg-type]
        ProcessCollector(registry=self.registry)
        self.servers: list[asyncio.base_events.Server] = []
        self.addresses: list[str] = []

    async def start(self, addresses: list[str]) -> list[str]:
        """Listen on every address; returns where (ports resolved)."""
        for address in addresses:
            try:
                if address.startswith("unix:"):
                    path = address[5:]
                    if os.path.exists(path) and not os.path.isdir(path):
                        os.unlink(path)  # a socket left behind by an earlier server
                    server = await asyncio.start_unix_server(self._answer, path)
                    self.addresses.append(address)
                else:
                    host, _, port = address.rpartition(":")
                    server = await asyncio.start_server(
                        self._answer, host.strip("[]"), int(port), reuse_address=True
                    )
                    bound = server.sockets[0].getsockname()
                    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                    self.addresses.append(f"{shown}:{bound[1]}")
            except OSError as e:
                await self.stop()
                why = (
                    "something already listens there"
                    if e.errno == errno.EADDRINUSE
                    else e.strerror or e
                )
                raise MetricsListenError(
                    f"--metrics: cannot listen on {address}: {why}; choose another address"
                ) from None
            self.servers.append(server)
        log.info("metrics", addresses=[f"http://{a}/metrics" for a in self.addresses])
        return self.addresses

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()
        for address in self.addresses:
            if address.startswith("unix:"):
                try:
                    os.unlink(address[5:])
                except FileNotFoundError:
                    pass

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from prometheus_client.exposition import choose_encoder

        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, path, *_ = [*lines[0].split(" "), "", ""]
            headers = {
                k.strip().lower(): v.strip()
                for k, sep, v in (ln.partition(":") for ln in lines[1:])
                if sep
            }
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET /metrics\n"
            elif path.split("?")[0] not in ("/metrics", "/"):
                status, ctype, body = "404 Not Found", "text/plain", b"try /metrics\n"
            else:
                encoder, ctype = choose_encoder(headers.get("accept", ""))
                status, body = "200 OK", encoder(self.registry)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
