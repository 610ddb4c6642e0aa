"""Firmware images for the CPU engine's tests, from Debian's packages; a test that needs one
skips, saying how to install it."""

from __future__ import annotations

from pathlib import Path

import pytest

OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin")
UBOOT_RISCV_SMODE = Path("/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin")
UBOOT_ARM64 = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")


def _image(path: Path) -> bytes:
    if not path.exists():
        pytest.skip(f"{path} is missing: apt-get install opensbi u-boot-qemu")
    return path.read_bytes()


@pytest.fixture
def opensbi() -> bytes:
    """OpenSBI's generic fw_jump.bin (jumps to 0x80200000 in S-mode)."""
    return _image(OPENSBI)


@pytest.fixture
def uboot_riscv() -> bytes:
    """U-Boot for RISC-V virt in S-mode (OpenSBI's payload, at 0x80200000)."""
    return _image(UBOOT_RISCV_SMODE)


@pytest.fixture
def uboot_arm64() -> bytes:
    """U-Boot for Arm virt (started from flash at 0)."""
    return _image(UBOOT_ARM64)
