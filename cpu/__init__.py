"""CPU front-ends: real firmware on the Unicorn engine (riscv64, aarch64), with the bus as its
memory. ``mmiobus cpu run`` runs one as a process of its own (``frontend``); the server can run
one itself. The engine (``engine``, ``riscv``, ``arm64``), the board devices it serves
(``riscv_devices``, ``gic``), the seam to the bus (``bus``) and how a machine description
becomes a memory map (``layout``, ``board``) are modules of their own.
"""

from .bus import Bus, BusFault
from .results import (
    BusAccessError,
    CpuError,
    ExitReason,
    RunResult,
    UnhandledTrap,
    UnmappedAccess,
)

__all__ = [
    "Bus",
    "BusAccessError",
    "BusFault",
    "CpuError",
    "ExitReason",
    "RunResult",
    "UnhandledTrap",
    "UnmappedAccess",
]
