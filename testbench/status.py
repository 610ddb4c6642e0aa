"""The live status of a running bench, read from the bus's own metrics (``serve --metrics``, on
a unix socket ``mmiobus up`` chose, so it is reachable whatever network namespace the bus runs
in): devices attached, accesses per second, faults, trace events lost, trace subscribers."""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def scrape(address: str, timeout: float = 5.0) -> str:
    """The metrics text at ``address`` (``unix:PATH`` or ``HOST:PORT``); ``OSError`` when
    nothing answers."""
    if address.startswith("unix:"):
        conn: http.client.HTTPConnection = _UnixConnection(address[5:], timeout)
    else:
        host, _, port = address.rpartition(":")
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise OSError(f"metrics at {address}: HTTP {response.status}")
        return body
    except http.client.HTTPException as e:
        raise OSError(f"metrics at {address}: {e}") from None
    finally:
        conn.close()


@dataclass
class Reading:
    """One scrape, summed the way the status line shows it."""

    at: float  # time.monotonic()
    accesses: float = 0
    faults: float = 0
    devices: float = 0
    trace_lost: float = 0
    trace_subscribers: float = 0
    deadlines_missed: float = 0


def read(text: str, at: float | None = None) -> Reading:
    """Sum a metrics text into a ``Reading``."""
    from prometheus_client.parser import text_string_to_metric_families

    r = Reading(time.monotonic() if at is None else at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "mmiobus_accesses_total":
                r.accesses += value
                if labels.get("result") != "OK":
                    r.faults += value
            elif name == "mmiobus_devices_attached":
                r.devices += value
            elif name == "mmiobus_trace_events_total" and labels.get("outcome") == "lost":
                r.trace_lost += value
            elif name == "mmiobus_trace_subscribers":
                r.trace_subscribers = value
            elif name == "mmiobus_deadlines_missed_total":
                r.deadlines_missed += value
    return r


def line(now: Reading, before: Reading | None, elapsed: float, names: list[str]) -> str:
    """The status line: time since the bench started, devices, accesses/s, faults, losses."""
    rate = 0.0
    if before is not None and now.at > before.at:
        rate = (now.accesses - before.accesses) / (now.at - before.at)
    devices = f"{int(now.devices)} device{'s' if now.devices != 1 else ''}"
    if names:
        devices += f" ({' '.join(names)})"
    parts = [
        f"● {elapsed:6.1f}s",
        devices,
        f"{rate:,.0f} accesses/s",
        f"{int(now.faults):,} faults",
        f"{int(now.trace_lost):,} trace events lost",
    ]
    if now.deadlines_missed:
        parts.append(f"{int(now.deadlines_missed):,} deadlines missed")
    return " · ".join(parts)
