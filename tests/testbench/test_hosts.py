"""A bench whose processes live on different hosts: network namespaces joined by a veth pair
stand in for two machines (needs root and iproute2; skipped otherwise). The bus runs in one,
the device process and a client in the other; `mmiobus up` reaches the bus from neither, over
the unix socket it keeps for itself. Every process presents the bench's token."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.netns import NEEDS, SCRATCH_MACHINE, two_hosts
from support.servers import MMIOBUS, process_env

pytestmark = NEEDS

MACHINE = SCRATCH_MACHINE
CLIENT = """\
import sys
from mmiobus.client import Bus
with Bus(sys.argv[1]) as bus:
    bus.write_u32(0x10000010, 0xFEEDF00D)          # the device, across the hosts
    bus.write_u32(0x100, bus.read_u32(0x10000010))  # and into RAM
print("client on", sys.argv[1])
"""


@pytest.fixture
def hosts():
    """Two namespaces, "bus" and "dev" (``support.netns``)."""
    with two_hosts("t", 252) as names:
        yield names


def test_a_bench_across_network_namespaces(hosts, tmp_path: Path):
    bus_ns, dev_ns, bus_ip = hosts
    (tmp_path / "machine.yaml").write_text(MACHINE)
    (tmp_path / "client.py").write_text(CLIENT)
    (tmp_path / "bench.token").write_text("a-token-for-the-bench\n")
    (tmp_path / "bench.yaml").write_text(f"""
bus: {{config: machine.yaml, host: {bus_ns}, listen: ["{bus_ip}:7170"]}}
# Beyond loopback the bus requires a token (serve --token-file), which every process presents.
credentials: {{token: {{file: bench.token}}}}
processes:
  scratch:
    kind: device
    class: mmiobus.devices.models.scratch:ScratchRam
    claim: scratch
    host: {dev_ns}
  client:
    kind: command
    program: [python, client.py]
    args: ["{{server}}"]
    host: {dev_ns}
expect:
  timeout: 60s
  memory: [{{addr: 0x100, value: 0xFEEDF00D}}]
  console: [{{process: client, text: "client on {bus_ip}:7170"}}]
  exit: [{{process: client}}]
""")
    out = subprocess.run([MMIOBUS, "up", str(tmp_path / "bench.yaml"), "--status", "off"],
                         capture_output=True, text=True, timeout=180, env=process_env())  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    dev_ip = bus_ip.rsplit(".", 1)[0] + ".2"
    # The device attached from the other host.
    assert f"device attached                device=scratch peer=ipv4:{dev_ip}" in out.stdout


def test_a_namespace_that_does_not_exist_is_one_line(tmp_path: Path):
    (tmp_path / "bench.yaml").write_text("bus: {host: no-such-ns-here}\n")
    out = subprocess.run([MMIOBUS, "up", str(tmp_path / "bench.yaml")], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert out.stderr == (f"mmiobus up: error: {tmp_path / 'bench.yaml'}:1:13: bus.host: there is "
                          "no network namespace 'no-such-ns-here' (make it with `ip netns add "
                          "no-such-ns-here`)\n")  # fmt: skip
