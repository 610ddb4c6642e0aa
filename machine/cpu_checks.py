"""Checking a description's CPUs against its regions: the RAM they run from, the board devices
they serve and the serial port the device tree names must exist, be of the right kind and show
in the CPU's address space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cpus import CpuSpec
from .devicetree import Layout
from .errors import Path_
from .schema import MmioSpec, RamSpec, RomSpec

if TYPE_CHECKING:
    from .build import Machine

Problems = list[tuple[Path_, str]]


def check_cpus(machine: Machine, cpus: list[CpuSpec], problems: Problems) -> dict[str, CpuSpec]:
    """The CPUs by name; each problem found is appended to ``problems`` with its path."""
    out: dict[str, CpuSpec] = {}
    for i, cpu in enumerate(cpus):
        path: Path_ = ("cpus", i)
        if cpu.name in out:
            problems.append(((*path, "name"), f"duplicate CPU name {cpu.name!r}"))
            continue
        before = len(problems)
        _check(machine, cpu, path, problems)
        if len(problems) == before:
            out[cpu.name] = cpu
    return out


def _check(machine: Machine, cpu: CpuSpec, path: Path_, problems: Problems) -> None:
    space_key = cpu.address_space or ""
    if space_key and space_key not in machine.spaces:
        problems.append(((*path, "address_space"), f"no address space with id {space_key!r}"))
        return
    if not machine.spaces:
        problems.append(((*path,), "the machine has no address space for the CPU"))
        return
    layout = Layout(machine, cpu)

    def region(field: Path_, region_id: str, kinds: tuple[type, ...], what: str) -> bool:
        declared = machine.declared.get(region_id)
        if declared is None:
            problems.append(((*path, *field), f"no region with id {region_id!r}"))
            return False
        if not isinstance(declared.spec, kinds):
            problems.append(((*path, *field), f"region {region_id!r} is "
                             f"{declared.spec.kind}, not {what}"))  # fmt: skip
            return False
        try:
            layout.place(region_id)
        except ValueError as e:
            problems.append(((*path, *field), str(e)))
            return False
        return True

    region(("ram",), cpu.ram, (RamSpec,), "ram")
    for kind, load in (("firmware", cpu.firmware), ("payload", cpu.payload)):
        if load is not None and not _loads_in(machine, cpu, load.addr):
            problems.append(((*path, kind, "addr"), f"{load.addr:#x} is not in RAM or ROM "
                             "the CPU sees"))  # fmt: skip
    for role, region_id in cpu.board_devices.items():
        if region(("board_devices", role), region_id, (MmioSpec,), "mmio"):
            spec = machine.declared[region_id].spec
            if spec.device != cpu.name:
                problems.append(((*path, "board_devices", role),
                                 f"region {region_id!r} must say `device: {cpu.name}` (the CPU "
                                 "serves it)"))  # fmt: skip
    if cpu.console is not None:
        region(("console",), cpu.console, (MmioSpec,), "mmio")


def _loads_in(machine: Machine, cpu: CpuSpec, addr: int) -> bool:
    fr = machine.address_space(cpu.address_space or "").flatview.lookup(addr)
    if fr is None:
        return False
    declared = machine.declared.get(machine.region_id(fr.mr))
    return declared is not None and isinstance(declared.spec, (RamSpec, RomSpec))
