"""Two hosts on one machine: network namespaces joined by a veth pair (needs root and
iproute2; ``NEEDS`` skips otherwise), and the machine the cross-host tests serve."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

NEEDS = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 (apt-get install iproute2, and run as root)",
)

# RAM and a scratch device's window, served by a device named "scratch".
SCRATCH_MACHINE = """\
address_spaces: [{name: memory, root: system}]
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 64K}
      - {name: scratch, kind: mmio, addr: 0x10000000, size: 0x100, device: scratch,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextmanager
def two_hosts(tag: str, subnet: int) -> Iterator[tuple[str, str, str]]:
    """Namespaces "bus" and "dev" (named after ``tag`` and this process), on 10.SUBNET.N.1 and
    10.SUBNET.N.2: yields (bus namespace, device namespace, the bus host's address). Skips the
    test when namespaces cannot be made here."""
    n = os.getpid() % 200 + 20
    bus, dev = f"mmio-{tag}bus-{n}", f"mmio-{tag}dev-{n}"
    ends = (f"{tag}b{n}", f"{tag}d{n}")
    try:
        _ip("netns", "add", bus)
        _ip("netns", "add", dev)
        _ip("link", "add", ends[0], "type", "veth", "peer", "name", ends[1])
    except subprocess.CalledProcessError as e:
        for ns in (bus, dev):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"cannot create network namespaces here: {e.stderr.decode().strip()}")
    try:
        for ns, link, host in ((bus, ends[0], 1), (dev, ends[1], 2)):
            _ip("link", "set", link, "netns", ns)
            _ip("-n", ns, "addr", "add", f"10.{subnet}.{n}.{host}/24", "dev", link)
            _ip("-n", ns, "link", "set", link, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield bus, dev, f"10.{subnet}.{n}.1"
    finally:
        for ns in (bus, dev):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def in_namespace(ns: str, *cmd: str) -> list[str]:
    """``cmd`` run in namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *cmd]
