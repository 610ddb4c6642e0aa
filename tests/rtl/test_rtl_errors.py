"""`mmiobus device rtl` refuses what it cannot serve with one line and exit status 1, before
anything attaches."""

from __future__ import annotations

import subprocess

import pytest
from mmiobus.client import Bus
from support.rtl import need_rtl
from support.servers import MMIOBUS, process_env, start_server

from .conftest import EXAMPLE


@pytest.fixture(scope="module")
def bus_server():
    server = start_server()
    yield server
    assert server.stop() == 0, server.log()


def _error(server, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([MMIOBUS, "device", "rtl", *args, "--server", server.tcp],
                         capture_output=True, text=True, timeout=120, env=process_env(env))  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("mmiobus device: ")]
    assert len(errors) == 1, out.stderr
    with Bus(server.tcp) as bus:
        assert bus.devices() == []
    return errors[0]


def test_a_missing_simulator_names_the_debian_package(bus_server, tmp_path):
    line = _error(bus_server, str(EXAMPLE), "--top", "regblock", "--at", "0x20000000:4K",
                  env={"PATH": str(tmp_path)})  # fmt: skip
    assert line == "mmiobus device: error: iverilog is not installed: apt-get install iverilog"


def test_a_design_that_does_not_compile_gives_the_compilers_first_error(bus_server, tmp_path):
    need_rtl()
    broken = tmp_path / "broken.v"
    broken.write_text("module broken(input wire pclk);\n  this is not verilog\nendmodule\n")
    line = _error(bus_server, str(broken), "--top", "broken", "--at", "0x20000000:4K")
    assert line.startswith(f"mmiobus device: error: {broken}:2: ")


def test_a_design_without_the_apb_ports_says_which_is_missing(bus_server):
    need_rtl()
    line = _error(bus_server, str(EXAMPLE), "--top", "regblock", "--prefix", "s_apb_",
                  "--at", "0x20000000:4K")  # fmt: skip
    assert line == "mmiobus device: error: regblock: the design has no port 's_apb_psel'"


def test_an_unknown_region_is_refused(bus_server):
    need_rtl()
    line = _error(bus_server, str(EXAMPLE), "--top", "regblock", "--claim", "no-such-region")
    assert "the bus has no region 'no-such-region' to claim" in line
