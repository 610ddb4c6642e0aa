"""Real QEMU processes for the peers' tests: `mmiobus device qemu` and `mmiobus pci-proxy`
started as a user would, and skips that say which Debian package brings what is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.devices import DeviceProcess
from support.servers import MMIOBUS, process_env

PACKAGES = {
    "qemu-system-riscv64": "qemu-system-misc",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-system-x86_64": "qemu-system-x86",
}


def need_qemu(program: str) -> str:
    """``program``'s path, or skip saying how to install it."""
    path = shutil.which(program)
    if path is None:
        pytest.skip(
            f"{program} is missing: apt-get install {PACKAGES[program]} "
            "(python3 dev.py test installs it when run as root)"
        )
    return path


def start_qemu_device(server: str, *args: str, wait: bool = True) -> DeviceProcess:
    """`mmiobus device qemu --server SERVER ARGS...`; by default wait until it serves."""
    log_path = Path(tempfile.mkstemp(prefix="mmiobus-qemu-", suffix=".log")[1])
    log = open(log_path, "w")  # noqa: SIM115 - the device keeps writing after we return
    proc = subprocess.Popen(
        [MMIOBUS, "device", "qemu", "--server", server, *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=process_env(),
    )
    log.close()
    dev = DeviceProcess(proc, "", log_path)
    if wait:
        dev.wait_serving()
    return dev


def qemu_pid(dev: DeviceProcess) -> int:
    """The pid of the QEMU a device process started (from its log)."""
    m = re.search(r"QEMU started .*pid=(\d+)", dev.log())
    assert m is not None, dev.log()
    return int(m[1])
