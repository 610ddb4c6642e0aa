"""`mmiobus serve --metrics`: what the bus counts, exposed for Prometheus (text and OpenMetrics),
read by scraping a real server while real clients and device processes use it."""

from __future__ import annotations

import http.client
import socket
import subprocess
from pathlib import Path

import pytest
from mmiobus.client import Bus
from mmiobus.testbench.status import scrape
from prometheus_client.parser import text_string_to_metric_families
from support.devices import start_device
from support.servers import MMIOBUS, start_server
from support.wait import wait_for

SCRATCH = "mmiobus.devices.models.scratch:ScratchRam"
DMA = "mmiobus.devices.models.dma:DmaEngine"
MACHINE = """\
address_spaces: [{name: memory, root: system}]
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 64K}
      - {name: boot, kind: rom, addr: 0x20000, size: 4K}
      - {name: dev, kind: mmio, addr: 0x10000000, size: 0x100, device: dev,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}
      - {name: slow, kind: mmio, addr: 0x10001000, size: 0x100, device: slow, deadline: 50ms,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}
      - {name: dma0, kind: mmio, addr: 0x10002000, size: 0x20, device: dma0,
         valid: {min: 4, max: 4}, impl: {min: 4, max: 4}}
"""


def _samples(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(scrape(address)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def served(tmp_path: Path):
    machine = tmp_path / "machine.yaml"
    machine.write_text(MACHINE)
    metrics = f"unix:{tmp_path / 'metrics.sock'}"
    server = start_server("--metrics", metrics, config=machine)
    yield server, metrics
    assert server.stop() == 0, server.log()


def test_client_accesses_by_space_kind_direction_result_and_initiator(served):
    server, metrics = served
    with Bus(server.tcp) as bus:
        bus.write(0x100, b"\x01\x02")
        bus.read(0x100, 2)
        bus.read(0x100, 2)
        bus.read(0x20000, 4)
        assert bus.read(0x5000_0000, 1, check=False).result.name == "DECODE_ERROR"
        bus.batch([bus_read(0x200) for _ in range(10)])
    s = _samples(metrics)
    counted = "mmiobus_accesses_total"
    base = {"address_space": "memory", "initiator": "client"}
    assert _value(s, counted, **base, kind="ram", direction="write", result="OK") == 1
    assert _value(s, counted, **base, kind="ram", direction="read", result="OK") == 12
    assert _value(s, counted, **base, kind="rom", direction="read", result="OK") == 1
    assert _value(s, counted, **base, kind="unassigned", direction="read",
                  result="DECODE_ERROR") == 1  # fmt: skip


def bus_read(addr: int):
    from mmiobus.client import Read

    return Read(addr, 4)


def test_forwarded_accesses_have_a_latency_histogram_per_device(served):
    server, metrics = served
    device = start_device(SCRATCH, server.tcp, "--claim", "dev")
    try:
        with Bus(server.tcp) as bus:
            for i in range(5):
                bus.write_u32(0x10000000, i)
                bus.read_u32(0x10000000)
        s = _samples(metrics)
        hist = "mmiobus_forwarded_access_latency_seconds"
        assert _value(s, f"{hist}_count", device="dev") == 10
        assert _value(s, f"{hist}_bucket", device="dev", le="+Inf") == 10
        assert 0 < _value(s, f"{hist}_sum", device="dev") < 10
        assert _value(s, "mmiobus_device_accesses_total", device="dev") == 10
        assert _value(s, "mmiobus_devices_attached", where="remote") == 1
    finally:
        device.stop()
    wait_for(lambda: _value(_samples(metrics), "mmiobus_devices_attached", where="remote") == 0)
    # A device that left still counts what it served.
    assert _value(_samples(metrics), "mmiobus_device_accesses_total", device="dev") == 10


def test_deadlines_missed_are_counted_per_device_and_kept_after_it_leaves(served, tmp_path):
    server, metrics = served
    log = tmp_path / "slow.jsonl"
    slow = start_device("support.models.recorder:Recorder", server.tcp, "--claim", "slow",
                        "--arg", f"log={log}", "--arg", "stall=true")  # fmt: skip
    try:
        with Bus(server.tcp) as bus:
            assert bus.read(0x10001000, 4, check=False).result.name == "ERROR"
        s = _samples(metrics)
        assert _value(s, "mmiobus_deadlines_missed_total", device="slow") == 1
        assert _value(s, "mmiobus_accesses_total", address_space="memory", kind="mmio",
                      direction="read", result="ERROR", initiator="client") == 1  # fmt: skip
    finally:
        slow.stop()
    wait_for(lambda: _value(_samples(metrics), "mmiobus_devices_attached", where="remote") == 0)
    assert _value(_samples(metrics), "mmiobus_deadlines_missed_total", device="slow") == 1


def test_device_dma_is_counted_with_the_device_as_initiator(served):
    server, metrics = served
    dma = start_device(DMA, server.tcp, "--claim", "dma0")
    try:
        with Bus(server.tcp) as bus:
            bus.write(0x1000, bytes(range(16)))
            for offset, value in ((0x0, 0x1000), (0x8, 0x2000), (0x10, 16), (0x14, 1 | 4)):
                bus.write_u32(0x10002000 + offset, value)  # SYNC: copied before the answer
            assert bus.read(0x2000, 16) == bytes(range(16))
        s = _samples(metrics)
        dma_reads = _value(s, "mmiobus_accesses_total", address_space="memory", kind="ram",
                           direction="read", result="OK", initiator="dma0")  # fmt: skip
        dma_writes = _value(s, "mmiobus_accesses_total", address_space="memory", kind="ram",
                            direction="write", result="OK", initiator="dma0")  # fmt: skip
        assert dma_reads >= 1 and dma_writes >= 1
        assert _value(s, "mmiobus_device_dma_requests_total", device="dma0") >= 2
    finally:
        dma.stop()


def test_trace_events_sent_and_lost_and_subscribers(served):
    from mmiobus.testbench.inprocess import Recording

    server, metrics = served

    def subscribers() -> int:
        return int(_value(_samples(metrics), "mmiobus_trace_subscribers"))

    recording = Recording(server.tcp, {"queue_capacity": 1}, subscribers)
    try:
        assert subscribers() == 1
        with Bus(server.tcp) as bus:
            bus.batch([bus_read(0x300) for _ in range(1000)])  # one offer: 1 queued, 999 lost
        wait_for(lambda: recording.snapshot())
        s = _samples(metrics)
        assert _value(s, "mmiobus_trace_events_total", outcome="lost") == 999
        assert _value(s, "mmiobus_trace_events_total", outcome="sent") == 1
        assert recording.snapshot()[0].addr == 0x300
    finally:
        recording.stop()
    wait_for(lambda: subscribers() == 0)
    s = _samples(metrics)  # a subscriber that left still counts
    assert _value(s, "mmiobus_trace_events_total", outcome="lost") == 999
    assert _value(s, "mmiobus_trace_events_total", outcome="sent") == 1


def test_the_topology_generation_follows_commits(served):
    server, metrics = served
    before = _value(_samples(metrics), "mmiobus_topology_generation")
    with Bus(server.tcp) as bus, bus.transaction() as t:
        t.create_region("extra", "ram", 0x1000)
        t.add_subregion("system", "extra", 0x40000)
    assert _value(_samples(metrics), "mmiobus_topology_generation") == before + 1


def test_openmetrics_when_the_scraper_asks_for_it(served):
    _server, metrics = served
    path = metrics.removeprefix("unix:")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    conn = http.client.HTTPConnection("localhost")
    conn.sock = sock
    conn.request(
        "GET", "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    reply = conn.getresponse()
    body = reply.read().decode()
    assert reply.status == 200
    assert reply.getheader("Content-Type").startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert "mmiobus_accesses_total" in body or "mmiobus_accesses" in body
    conn.close()


def test_over_tcp_and_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([MMIOBUS, "serve", "--listen", "127.0.0.1:0", "--metrics",
                              f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1] == (
        f"mmiobus serve: error: --metrics: cannot listen on 127.0.0.1:{port}: something already "
        "listens there; choose another address"
    )


def test_without_metrics_nothing_is_counted():
    from mmiobus.machine import Machine
    from mmiobus.server.config import ServerConfig
    from mmiobus.server.core import BusCore

    assert BusCore(Machine.default(), ServerConfig()).metrics is None
    assert BusCore(Machine.default(), ServerConfig(metrics=("unix:/x",))).metrics is not None
