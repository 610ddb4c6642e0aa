"""Which QEMU program runs an architecture, and which Debian package brings it."""

from __future__ import annotations

import shutil

# architecture -> (program, Debian package)
PROGRAMS = {
    "riscv64": ("qemu-system-riscv64", "qemu-system-misc"),
    "riscv32": ("qemu-system-riscv32", "qemu-system-misc"),
    "aarch64": ("qemu-system-aarch64", "qemu-system-arm"),
    "arm": ("qemu-system-arm", "qemu-system-arm"),
    "x86_64": ("qemu-system-x86_64", "qemu-system-x86"),
    "i386": ("qemu-system-i386", "qemu-system-x86"),
}


class QemuMissing(Exception):
    """The QEMU program is not installed; the message names the package that brings it."""


def program_for(arch: str) -> str:
    """``qemu-system-ARCH`` for a known architecture (``ValueError`` otherwise)."""
    if arch not in PROGRAMS:
        raise ValueError(f"no QEMU architecture {arch!r} (choose from {', '.join(PROGRAMS)})")
    return PROGRAMS[arch][0]


def find_qemu(program: str) -> str:
    """The path of ``program`` (a name on PATH or a path), or ``QemuMissing`` saying what to
    install."""
    path = shutil.which(program)
    if path is not None:
        return path
    package = next((pkg for prog, pkg in PROGRAMS.values() if prog == program), None)
    hint = f"apt-get install {package}" if package else "install QEMU, or give the program's path"
    raise QemuMissing(f"{program} is not installed: {hint}")
