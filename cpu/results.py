"""What a run returns, and the errors it raises.

A run ends *normally* with a :class:`RunResult` whose ``reason`` says why
(:class:`ExitReason`). It ends with a :class:`CpuError` subclass when the guest
did something the machine cannot carry on from; the error names the pc and,
for memory, the address and the access, and carries the partial result in
``.result`` (counts up to the failure).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field


class ExitReason(enum.StrEnum):
    """Why :meth:`CpuEngine.run` returned."""

    REACHED = "reached"  # pc reached until_pc (not executed)
    GUEST_EXIT = "guest_exit"  # the guest powered off / reset the machine
    TIMEOUT = "timeout"  # timeout_seconds of wall time elapsed
    MAX_INSTRUCTIONS = "max_instructions"  # at the last block boundary before the limit
    STOPPED = "stopped"  # CpuEngine.stop() (another thread, a device, Ctrl-C)
    IDLE = "idle"  # wfi with no interrupt source and idle="return"


@dataclass
class RunResult:
    """The outcome of one :meth:`CpuEngine.run` call (counts are for this call only).

    ``instructions`` counts executed instructions: a per-block hook adds each
    block's length when it is entered, and the count is corrected when a block
    is left early (slice end, synchronous trap, fault); an instruction that
    traps counts as executed. None when the machine was built with
    ``count_instructions=False``.
    ``accesses`` counts reads and writes per device name, for every access that
    went through a callback (board devices and bus windows; RAM is not counted).
    ``traps`` counts trap entries the machine made by hand (exceptions and
    injected interrupts); interrupts Unicorn delivers itself are not seen.
    """

    reason: ExitReason
    pc: int
    wall_seconds: float
    instructions: int | None = None
    accesses: Counter = field(default_factory=Counter)
    traps: Counter = field(default_factory=Counter)
    exit_code: int | None = None
    exit_kind: str | None = None  # "poweroff" / "reset" for GUEST_EXIT

    @property
    def mmio_accesses(self) -> int:
        return sum(self.accesses.values())

    def summary(self) -> str:
        """One line: reason, pc, instructions, accesses (top devices), wall time."""
        insns = "?" if self.instructions is None else f"{self.instructions:,}"
        top = ", ".join(f"{name} {n:,}" for name, n in self.accesses.most_common(4))
        extra = f" exit_code={self.exit_code}" if self.exit_code is not None else ""
        rate = ""
        if self.instructions and self.wall_seconds > 0:
            rate = f" ({self.instructions / self.wall_seconds / 1e6:.1f} MIPS)"
        return (
            f"{self.reason.value}{extra} at pc={self.pc:#x}: {insns} instructions, "
            f"{self.mmio_accesses:,} MMIO accesses ({top}), "
            f"{sum(self.traps.values()):,} traps, {self.wall_seconds * 1000:.1f} ms{rate}"
        )


class CpuError(Exception):
    """The guest cannot go on. ``pc`` is where it stopped; ``result`` the partial run."""

    def __init__(self, message: str, pc: int) -> None:
        super().__init__(message)
        self.pc = pc
        self.result: RunResult | None = None


class UnmappedAccess(CpuError):
    """A fetch, read or write at an address nothing is mapped at (no RAM, device or bus window)."""

    def __init__(self, kind: str, addr: int, size: int, pc: int) -> None:
        super().__init__(f"{kind} of {size} bytes at unmapped address {addr:#x} (pc={pc:#x})", pc)
        self.kind, self.addr, self.size = kind, addr, size


class BusAccessError(CpuError):
    """The bus (or a board device) faulted an access. The run stops at once, so
    ``pc`` is the faulting instruction (nothing after it ran); ``block_pc`` is
    the pc the MMIO callback saw, which is exact while Unicorn's per-instruction
    count hook syncs it (always here; without that hook Unicorn only syncs the
    pc at block starts). The fault is not reflected into the guest."""

    def __init__(
        self, fault: Exception, addr: int, size: int, is_write: bool, block_pc: int, pc: int
    ) -> None:
        kind = "write" if is_write else "read"
        super().__init__(
            f"{fault} [{kind} of {size} bytes at {addr:#x}, in the block "
            f"starting at pc={block_pc:#x}; stopped at pc={pc:#x}]",
            pc,
        )
        self.fault, self.addr, self.size, self.is_write, self.block_pc = (
            fault,
            addr,
            size,
            is_write,
            block_pc,
        )


class UnhandledTrap(CpuError):
    """A trap (exception) with no handler to go to: e.g. an illegal instruction while
    the trap vector does not point at executable memory, or an exception the
    machine cannot reflect into the guest."""

    def __init__(self, what: str, pc: int, detail: str = "") -> None:
        super().__init__(f"unhandled {what} at pc={pc:#x}" + (f": {detail}" if detail else ""), pc)
        self.what = what
