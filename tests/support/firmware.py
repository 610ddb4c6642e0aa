"""Firmware images from Debian's packages, and a `mmiobus cpu run` process to boot them.

Tests that need an image skip with a reason that says how to install it
(``python3 dev.py test`` installs the packages itself when it runs as root where apt works).
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .servers import MMIOBUS, process_env

OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin")
UBOOT_RISCV_SMODE = Path("/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin")
UBOOT_ARM64 = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
PACKAGES = {OPENSBI: "opensbi", UBOOT_RISCV_SMODE: "u-boot-qemu", UBOOT_ARM64: "u-boot-qemu"}


def need(image: Path) -> Path:
    """``image``, or skip the test saying which Debian package brings it."""
    if not image.exists():
        pytest.skip(
            f"{image} is missing: apt-get install {PACKAGES[image]} "
            "(python3 dev.py test installs it when run as root)"
        )
    return image


@dataclass
class CpuProcess:
    """A running `mmiobus cpu run` and its log."""

    proc: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 120.0) -> tuple[int, str, str]:
        """Its exit status, standard output and log, once it exits."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"cpu run did not end within {timeout}s:\n{self.log()}") from None
        return self.proc.returncode, out, self.log()

    def interrupt(self) -> None:
        """Ctrl-C."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_cpu(server: str, *args: str) -> CpuProcess:
    """`mmiobus cpu run --server SERVER ARGS...`, started (not waited for)."""
    log_path = Path(tempfile.mkstemp(prefix="mmiobus-cpu-", suffix=".log")[1])
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [MMIOBUS, "cpu", "run", "--server", server, *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=process_env(),
        )
    return CpuProcess(proc, log_path)
