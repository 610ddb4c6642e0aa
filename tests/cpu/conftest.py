"""Firmware images for the CPU engine's tests, from Debian's packages; a test that needs one
skips, saying how to install it (``support.firmware``)."""

from __future__ import annotations

import pytest
from support.firmware import OPENSBI, UBOOT_ARM64, UBOOT_RISCV_SMODE, need


@pytest.fixture
def opensbi() -> bytes:
    """OpenSBI's generic fw_jump.bin (jumps to 0x80200000 in S-mode)."""
    return need(OPENSBI).read_bytes()


@pytest.fixture
def uboot_riscv() -> bytes:
    """U-Boot for RISC-V virt in S-mode (OpenSBI's payload, at 0x80200000)."""
    return need(UBOOT_RISCV_SMODE).read_bytes()


@pytest.fixture
def uboot_arm64() -> bytes:
    """U-Boot for Arm virt (started from flash at 0)."""
    return need(UBOOT_ARM64).read_bytes()
