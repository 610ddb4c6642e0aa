"""CPUs in machine descriptions: what a CPU front-end runs, where it loads firmware, and which
regions it serves itself.

    cpus:
      - name: cpu0
        arch: riscv64
        board: virt               # QEMU's virt conventions: boot, device tree, interrupts
        ram: ram                  # the RAM region firmware runs from
        firmware: {addr: 0x80000000}
        payload: {addr: 0x80200000}
        board_devices: {aclint-swi: clint.swi, aclint-mtimer: clint.mtimer, plic: plic0,
                        test: test0}
        console: uart0            # the serial port the device tree names for output
        interrupts: {uart0.irq: 10}

Board devices — timers and interrupt controllers that firmware polls millions of times — are
mmio regions with ``device: <cpu name>``: the CPU serves them without a round trip, and serves
the bus's accesses to them too, so what clients read agrees with what the guest sees.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .fields import U64, Strict

ROLES: dict[tuple[str, str], tuple[set[str], set[str]]] = {
    # (arch, board): (required roles, optional roles)
    ("riscv64", "virt"): ({"aclint-swi", "aclint-mtimer", "plic"}, {"test"}),
    ("aarch64", "virt"): ({"gic-distributor", "gic-cpu"}, set()),
}
TIMEBASE_HZ = {("riscv64", "virt"): 10_000_000, ("aarch64", "virt"): 62_500_000}
INTERRUPT_INPUTS = {("riscv64", "virt"): (1, 95), ("aarch64", "virt"): (0, 987)}


class LoadSpec(Strict):
    """Where an image loads, and optionally which file it is by default."""

    addr: U64 = Field(description="guest-physical address the image loads at")
    file: str | None = Field(
        None, description="the image, relative to this file (a front-end option overrides it)"
    )


class FdtSpec(Strict):
    """The flattened device tree the firmware reads."""

    addr: U64 | None = Field(
        None,
        description="where it loads (default: the board's place: end of RAM on riscv64 "
        "virt, start of RAM on aarch64 virt)",
    )
    file: str | None = Field(
        None,
        description="a device tree blob to load instead of the one generated from this description",
    )


class CpuSpec(Strict):
    """One CPU and its boot convention."""

    name: str = Field("cpu0", description="initiator name of its accesses; its device name")
    arch: Literal["riscv64", "aarch64"]
    board: Literal["virt"] = Field(
        "virt", description="boot, device tree and interrupt conventions (QEMU 7.2's virt boards)"
    )
    address_space: str | None = Field(None, description="id; default: the first one")
    ram: str = Field(description="id of the RAM region firmware runs from")
    firmware: LoadSpec
    payload: LoadSpec | None = None
    fdt: FdtSpec = Field(default_factory=lambda: FdtSpec())
    board_devices: dict[str, str] = Field(
        description="role -> id of an mmio region the CPU serves itself (riscv64 virt: "
        "aclint-swi, aclint-mtimer, plic, test; aarch64 virt: gic-distributor, gic-cpu)"
    )
    console: str | None = Field(None, description="id of the serial port's region")
    interrupts: dict[str, int] = Field(
        default_factory=dict,
        description="bus interrupt line -> interrupt-controller input (PLIC source 1..95; GIC "
        "shared peripheral interrupt 0..987)",
    )
    timebase_hz: int | None = Field(
        None,
        gt=0,
        description="timer frequency; default: the "
        "board's (10 MHz riscv64 virt, 62.5 MHz aarch64 virt)",
    )
    run: Literal["process", "server"] = Field(
        "process", description="process: `mmiobus cpu run` runs it; server: the server does"
    )

    @model_validator(mode="after")
    def _roles(self) -> CpuSpec:
        required, optional = ROLES[(self.arch, self.board)]
        missing = sorted(required - set(self.board_devices))
        if missing:
            raise ValueError(
                f"board_devices needs {', '.join(missing)} for {self.arch} {self.board}"
            )
        unknown = sorted(set(self.board_devices) - required - optional)
        if unknown:
            known = ", ".join(sorted(required | optional))
            raise ValueError(f"board_devices: unknown role {unknown[0]!r} (one of {known})")
        low, high = INTERRUPT_INPUTS[(self.arch, self.board)]
        for line, number in self.interrupts.items():
            if not low <= number <= high:
                raise ValueError(f"interrupts: {line}: {number} is outside {low}..{high}")
        return self

    @property
    def timebase(self) -> int:
        return self.timebase_hz or TIMEBASE_HZ[(self.arch, self.board)]
