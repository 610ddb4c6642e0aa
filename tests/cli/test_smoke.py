"""The installed `mmiobus` script (and `python -m mmiobus`), run as a user runs them: a few
subprocess smoke tests that the entry points, exit statuses and output streams work outside
pytest's process. Everything else about the command line is tested in-process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mmiobus.client import Bus
from support.command_line import command_env, mmiobus
from support.servers import MMIOBUS, ServerFactory, ServerProcess
from support.trace_stream import joined
from support.wait import TIMEOUT, wait_for

COMMANDS = ["serve", "mtree", "read", "write", "apply", "info", "device", "trace", "replay"]


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(None, "--log-format", "json")


def test_help_lists_the_commands():
    out = mmiobus("--help")
    assert out.returncode == 0, out.stderr
    assert all(command in out.stdout for command in COMMANDS)


def test_python_dash_m_mmiobus_is_the_same_command():
    out = subprocess.run(
        [sys.executable, "-m", "mmiobus", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=command_env(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == mmiobus("--help").stdout


def test_write_then_read_against_a_server(server: ServerProcess):
    assert mmiobus("write", "-s", server.tcp, "0x2000", "6d 6d 69 6f").returncode == 0
    out = mmiobus("read", "-s", server.tcp, "0x2000", "4")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("0000000000002000  6d 6d 69 6f ") and "|mmio|" in out.stdout


def test_usage_error_exit_status_and_bus_fault_exit_status(server: ServerProcess):
    """The script's exit statuses: 2 for a malformed address, 3 for a bus fault."""
    usage = mmiobus("read", "-s", "127.0.0.1:99999", "0")
    assert usage.returncode == 2 and "0-65535" in usage.stderr
    fault = mmiobus("read", "-s", server.tcp, "0x30000000", "1")
    assert fault.returncode == 3 and fault.stdout == ""
    assert "DECODE_ERROR" in fault.stderr


def test_trace_records_to_a_file(server: ServerProcess, tmp_path):
    path = tmp_path / "run.jsonl"
    before = joined(server)
    proc = subprocess.Popen(
        [MMIOBUS, "trace", "-s", server.tcp, "--range", "0x3000+0x10", "--format", "jsonl",
         "--out", str(path), "--count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=command_env(),
    )  # fmt: skip
    try:
        wait_for(lambda: joined(server) > before or proc.poll() is not None)
        with Bus(server.tcp) as bus:
            bus.write(0x3004, b"\x2a")
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    [record] = [json.loads(line) for line in path.read_text().splitlines()]
    assert (record["addr"], record["dir"], record["data"]) == (0x3004, "write", "2a")
