"""The bus and its devices on separate hosts: network namespaces joined by a veth pair stand in
for two machines (needs root and iproute2; skipped otherwise). The server listens on its host's
address only; the device process and the client run on the other host."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from support.netns import NEEDS, SCRATCH_MACHINE, two_hosts
from support.servers import MMIOBUS

pytestmark = NEEDS

MACHINE = SCRATCH_MACHINE


@pytest.fixture
def hosts():
    """Two namespaces, "bus" and "dev" (``support.netns``)."""
    with two_hosts("m", 251) as names:
        yield names


def _in(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def _wait(proc: subprocess.Popen[str], word: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"exited with {proc.wait()} before printing {word!r}")
        if word in line:
            return line.split()[-1]
    raise AssertionError(f"no {word!r} within {timeout}s")


def test_device_and_client_on_another_host_reach_the_bus(hosts, tmp_path: Path):
    bus_ns, dev_ns, bus_ip = hosts
    machine = tmp_path / "m.yaml"
    machine.write_text(MACHINE)
    server = subprocess.Popen(
        # Beyond loopback without authentication: --insecure says it is meant (issue 12).
        _in(
            bus_ns,
            MMIOBUS,
            "serve",
            "--config",
            str(machine),
            "--listen",
            f"{bus_ip}:7170",
            "--insecure",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    device = None
    try:
        address = _wait(server, "listening on")
        assert address == f"{bus_ip}:7170"
        device = subprocess.Popen(
            _in(
                dev_ns,
                MMIOBUS,
                "device",
                "run",
                "mmiobus.devices.models.scratch:ScratchRam",
                "--server",
                address,
                "--claim",
                "scratch",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        _wait(device, "serving")

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                _in(dev_ns, MMIOBUS, *args, "--server", address),
                capture_output=True,
                text=True,
                timeout=60,
            )

        assert cli("write", "-f", "u32", "0x10000010", "0xfeedf00d").returncode == 0
        assert cli("read", "-f", "u32", "0x10000010").stdout.strip() == "0xfeedf00d"
        assert cli("write", "0x100", "c0ffee").returncode == 0  # RAM, from the other host
        assert " c0 ff ee " in cli("read", "0x100", "3").stdout
        listing = cli("devices").stdout
        dev_ip = bus_ip.rsplit(".", 1)[0] + ".2"
        assert "scratch" in listing and dev_ip in listing  # the device's peer: the other host
    finally:
        for p in (device, server):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(20)
