"""One region of the memory model from its description entry: its kind, contents, flags and
the access constraints its device declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmiobus.memory.access import AccessConstraints, Endianness, MemoryRegionOps
from mmiobus.memory.region import MemoryRegion, RegionKind, Unassigned
from mmiobus.memory.system import MemorySystem

from .contents import load_file_contents
from .schema import AccessSpec, MmioSpec, RomdSpec


def constraints(spec: AccessSpec) -> AccessConstraints:
    """The memory model's access constraints for a description's ``valid``/``impl``."""
    return AccessConstraints(spec.min, spec.max, spec.unaligned)


def declared_ops(spec: MmioSpec | RomdSpec) -> MemoryRegionOps:
    """Ops with the constraints a description declares and no callbacks yet."""
    return MemoryRegionOps(
        endianness=Endianness(spec.endianness),
        valid=constraints(spec.valid),
        impl=constraints(spec.impl),
    )


def new_region(system: MemorySystem, spec: Any, base_dir: Path) -> MemoryRegion:
    """An unmapped region of ``spec``'s kind (any but alias) in ``system``, with its ``file:``
    contents (relative to ``base_dir``). Raises ``ContentsError`` for the file and
    ``ValueError``/``MemoryModelError`` for what the memory model refuses."""
    data = None
    if getattr(spec, "file", None):
        data = load_file_contents(spec.file, base_dir, spec.size)
    if spec.kind == "container":
        return system.container(spec.name, spec.size)
    if spec.kind == "ram":
        return system.ram(spec.name, spec.size, data)
    if spec.kind == "rom":
        return system.rom(spec.name, spec.size, data)
    if spec.kind == "romd":
        return system.romd(spec.name, spec.size, declared_ops(spec), data)
    if spec.kind == "mmio":
        return system.mmio(spec.name, spec.size, unassigned=Unassigned(spec.unassigned))
    raise AssertionError(spec.kind)


def set_flags(mr: MemoryRegion, spec: Any) -> None:
    """Give ``mr`` the flags its entry declares (a ROM is always read-only)."""
    mr.enabled = spec.enabled
    mr.readonly = spec.readonly or mr.kind is RegionKind.ROM
    mr.nonvolatile = spec.nonvolatile
    if isinstance(spec, RomdSpec):
        mr.romd_mode = spec.romd_mode
