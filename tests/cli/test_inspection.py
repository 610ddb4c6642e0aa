"""What the command line tells about a running bus, for people and (`--json`) for machines:
`regions`, `devices`, `irqs`, `read --json`, and `mtree` with `$MMIOBUS_SERVER`; run in this
process (``main(argv)``) against a real server with a device in the server, a device process,
and a device that is away.
"""

from __future__ import annotations

import json

import pytest
from mmiobus.client import Bus
from support.devices import start_device
from support.machines import in_server, machine_yaml, mmio
from support.models import TIMER
from support.ports import free_port
from support.servers import ServerFactory, ServerProcess

LINES_TARGET = "support.models.irq_lines:IrqLines"
MACHINE = machine_yaml(
    [
        {"name": "ram", "kind": "ram", "addr": 0, "size": 0x10000},
        mmio("lines0", 0x10000000, 0x100, in_server(LINES_TARGET)),
        mmio("tick0", 0x10001000, 0x10, "tick0", valid=(4, 4), impl=(4, 4), deadline="250ms"),
        mmio("away0", 0x10002000, 0x10, "away0", absent="ram"),
        {"name": "spare", "kind": "ram", "addr": 0x50000000, "size": 0x1000, "enabled": False},
        {
            "name": "bank",
            "kind": "container",
            "addr": 0x20000000,
            "size": 0x10000,
            "subregions": [{"name": "bank.ram", "kind": "ram", "addr": 0x1000, "size": 0x1000}],
        },
    ]
)


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE)


@pytest.fixture(scope="module")
def tick(server: ServerProcess):
    device = start_device(TIMER, server.tcp, "--claim", "tick0", name="tick0")
    yield device
    device.stop()


@pytest.fixture(scope="module")
def bus(server: ServerProcess):
    with Bus(server.tcp) as b:
        yield b


def rows(text: str) -> dict[str, list[str]]:
    """A table's rows by their first cell, each cut at two or more spaces."""
    import re

    lines = text.splitlines()
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", ln.strip()) for ln in lines)}


# -- regions -------------------------------------------------------------------------------------


def test_regions_lists_every_region_with_its_ranges_device_and_server(mmiobus, server, tick):
    """One row per region: kind, range in its container, range in the address space that
    shows it, the declared device, what it answers while away, its deadline (its own, else the
    server's default), and who serves it now."""
    table = rows(mmiobus("regions", "-s", server.tcp).text())
    assert table["REGION"] == ["REGION", "KIND", "IN CONTAINER", "IN ADDRESS SPACE", "DEVICE",
                               "ABSENT", "DEADLINE", "SERVED BY"]  # fmt: skip
    assert table["ram"] == ["ram", "ram", "system:0x0-0xffff", "memory:0x0-0xffff",
                            "-", "-", "-", "-"]  # fmt: skip
    assert table["tick0"][1:7] == ["mmio", "system:0x10001000-0x1000100f",
                                   "memory:0x10001000-0x1000100f", "tick0", "error", "250ms"]  # fmt: skip
    assert table["tick0"][7].startswith("tick0 at ipv4:127.0.0.1:")
    assert table["away0"][4:] == ["away0", "ram", "1000ms", "nobody: answers from scratch RAM"]
    assert table["lines0"][4:] == ["lines0", "error", "1000ms",
                                   f"lines0 in the server ({LINES_TARGET})"]  # fmt: skip
    assert table["bank.ram"][2:4] == ["bank:0x1000-0x1fff", "memory:0x20001000-0x20001fff"]
    assert table["spare"][3] == "memory:0x50000000-0x50000fff (disabled)"
    assert table["system"][2] == "- (top level)"


def test_regions_json_has_the_same_facts(mmiobus, server, tick):
    records = {
        r["id"]: r for r in json.loads(mmiobus("regions", "--json", "-s", server.tcp).text())
    }
    tick0 = records["tick0"]
    assert (tick0["kind"], tick0["container"], tick0["addr"], tick0["size"]) == (
        "mmio", "system", 0x10001000, 0x10)  # fmt: skip
    assert tick0["address_ranges"] == [
        {"address_space": "memory", "start": 0x10001000, "size": 0x10}
    ]
    assert (tick0["device"], tick0["absent"], tick0["deadline_ms"]) == ("tick0", "error", 250)
    assert tick0["served_by"]["device"] == "tick0" and not tick0["served_by"]["in_server"]
    assert records["away0"]["served_by"] is None
    assert records["lines0"]["served_by"]["in_server"]
    assert records["lines0"]["device_class"] == LINES_TARGET
    assert records["system"]["size"] == 2**64
    assert records["spare"]["enabled"] is False


def test_regions_takes_globs_and_names_one_that_matches_nothing(mmiobus, server):
    table = rows(mmiobus("regions", "bank*", "-s", server.tcp).text())
    assert sorted(table) == ["REGION", "bank", "bank.ram"]
    out = mmiobus("regions", "nosuch*", "-s", server.tcp)
    assert out.returncode == 1
    line = out.one_error_line()
    assert "'nosuch*'" in line and "mmiobus regions" in line


# -- devices, irqs, read --json ------------------------------------------------------------------


def test_devices_json(mmiobus, server, tick):
    devices = {
        d["name"]: d for d in json.loads(mmiobus("devices", "--json", "-s", server.tcp).text())
    }
    assert devices["tick0"]["regions"] == ["tick0"] and not devices["tick0"]["in_server"]
    assert devices["lines0"]["in_server"] and devices["lines0"]["peer"] == ""
    assert set(devices["tick0"]) == {"name", "regions", "peer", "in_server", "accesses",
                                     "timeouts", "dma"}  # fmt: skip


def test_irqs_json_and_text(mmiobus, server, bus):
    bus.write(0x10000000, b"\x01")  # lines0.irq high
    bus.write(0x10000008, b"\x01")  # lines0.tx high, then low: it exists once it changed
    bus.write(0x10000008, b"\x00")
    levels = json.loads(mmiobus("irqs", "--json", "lines0.*", "-s", server.tcp).text())
    assert {"name": "lines0.irq", "level": 1} in levels
    assert {"name": "lines0.tx", "level": 0} in levels
    text = mmiobus("irqs", "lines0.irq", "-s", server.tcp).text()
    assert text == "lines0.irq 1\n"


def test_irqs_of_a_line_that_does_not_exist_is_one_line_listing_those_that_do(mmiobus, server, bus):
    """A name or glob that selects no line is no silent empty answer: exit 1, one line naming
    it and the lines there are."""
    bus.write(0x10000000, b"\x01")
    out = mmiobus("irqs", "lines0.irqq", "-s", server.tcp)
    assert out.returncode == 1
    line = out.one_error_line()
    assert "'lines0.irqq'" in line and "lines0.irq" in line and "first sets it" in line


def test_read_json_names_the_result(mmiobus, server, bus):
    """`read --json`: the address space, address, size, result name and data; a fault has
    its result name and no data (exit 3, and the one line on standard error)."""
    bus.write(0x100, b"\x01\x02\x03\x04")
    ok = json.loads(mmiobus("read", "--json", "-f", "u16", "0x100", "4", "-s", server.tcp).text())
    assert ok == {"address_space": "memory", "addr": 0x100, "size": 4, "result": "OK",
                  "data": "01020304", "values": [0x0201, 0x0403]}  # fmt: skip
    fault = mmiobus("read", "--json", "0x30000000", "4", "-s", server.tcp)
    assert fault.returncode == 3
    assert json.loads(fault.output)["result"] == "DECODE_ERROR"
    assert json.loads(fault.output)["data"] is None
    assert "DECODE_ERROR" in fault.one_error_line()


# -- mtree and $MMIOBUS_SERVER -------------------------------------------------------------------


def test_mtree_without_file_shows_the_bus_at_mmiobus_server(mmiobus, server, bus):
    """With $MMIOBUS_SERVER set, `mtree` (no FILE, no --server) prints that bus's tree, as
    every command that talks to a bus defaults to it; unset, the built-in machine's."""
    env = {"MMIOBUS_SERVER": server.tcp}
    assert mmiobus("mtree", "-f", env=env).text() == bus.mtree(flat=True)
    builtin = mmiobus("mtree", "-f").text()
    assert "tick0" not in builtin and "boot.rom" in builtin
    assert mmiobus("mtree", "-f", env={"MMIOBUS_SERVER": ""}).text() == builtin


def test_mtree_with_mmiobus_server_down_says_so(mmiobus):
    target = f"127.0.0.1:{free_port()}"
    out = mmiobus("mtree", env={"MMIOBUS_SERVER": target})
    assert out.returncode == 1
    assert target in out.one_error_line()


def test_mtree_help_says_which_wins(mmiobus):
    text = " ".join(mmiobus("mtree", "--help").text().split())
    assert "$MMIOBUS_SERVER" in text and "built-in default machine" in text


def test_irqs_watch_of_a_line_not_there_yet_warns_and_watches(server, bus):
    """With --watch, a line that does not exist yet may appear (its device attaches later):
    one warning line, then its changes as they come."""
    import subprocess

    from support.command_line import command_env
    from support.servers import MMIOBUS

    proc = subprocess.Popen(
        [MMIOBUS, "irqs", "--watch", "lines0.rx", "-s", server.tcp],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=command_env(),
    )  # fmt: skip
    try:
        assert proc.stderr is not None and proc.stdout is not None
        warning = proc.stderr.readline()
        assert "warning: no interrupt line matches 'lines0.rx' yet; watching" in warning
        bus.write(0x10000010, b"\x01")  # lines0.rx high
        assert proc.stdout.readline() == "lines0.rx 1\n"
    finally:
        proc.kill()
        proc.communicate(timeout=20)
