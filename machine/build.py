"""Machines: a memory system built from a description, with the ids that name its parts."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mmiobus.memory.access import AccessConstraints, Endianness, MemoryRegionOps
from mmiobus.memory.addrspace import AddressSpace
from mmiobus.memory.errors import (
    AlreadyExistsError,
    InUseError,
    MemoryModelError,
    NotFoundError,
)
from mmiobus.memory.region import MemoryRegion, RegionKind, Unassigned
from mmiobus.memory.system import MemorySystem

from .description import (
    AccessSpec,
    AliasSpec,
    DescriptionError,
    MachineSpec,
    MmioSpec,
    Path_,
    RomdSpec,
    load_file_contents,
    parse_text,
)
from .errors import format_path

DEFAULT_MACHINE = "default.yaml"


def constraints(spec: AccessSpec) -> AccessConstraints:
    return AccessConstraints(spec.min, spec.max, spec.unaligned)


def declared_ops(spec: MmioSpec | RomdSpec) -> MemoryRegionOps:
    """Ops with the constraints a description declares and no callbacks yet."""
    return MemoryRegionOps(
        endianness=Endianness(spec.endianness),
        valid=constraints(spec.valid),
        impl=constraints(spec.impl),
    )


@dataclass
class Declared:
    """Where a region came from in its description."""

    spec: Any
    path: Path_


class Machine:
    """A ``MemorySystem`` plus the ids (region ids, address-space names) that descriptions,
    RPCs and the command line use to refer to its parts."""

    def __init__(self, endianness: Endianness = Endianness.LITTLE) -> None:
        self.system = MemorySystem(endianness)
        self.regions: dict[str, MemoryRegion] = {}
        self.region_ids: dict[MemoryRegion, str] = {}
        self.spaces: dict[str, AddressSpace] = {}
        self.declared: dict[str, Declared] = {}
        self.source = ""

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str, base_dir: Path | str = ".", source: str = "") -> Machine:
        spec, locate = parse_text(text, source)
        return cls.from_spec(spec, Path(base_dir), source, locate)

    @classmethod
    def from_file(cls, path: Path | str) -> Machine:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            problem = [((), f"cannot read the file: {e.strerror or e}")]
            raise DescriptionError(problem, str(path)) from None
        machine = cls.from_text(text, path.parent, str(path))
        machine.source = str(path)
        return machine

    @classmethod
    def default(cls) -> Machine:
        """The built-in default machine (RAM, a boot ROM, a UART window)."""
        text = resources.files(__package__).joinpath("machines", DEFAULT_MACHINE).read_text()
        machine = cls.from_text(text, ".", "<default machine>")
        machine.source = "<default machine>"
        return machine

    @classmethod
    def from_spec(
        cls, spec: MachineSpec, base_dir: Path, source: str = "", locate: Any = None
    ) -> Machine:
        machine = cls(Endianness(spec.endianness))
        problems: list[tuple[Path_, str]] = []
        machine._build(spec, base_dir, problems)
        if problems:
            raise DescriptionError(problems, source, locate)
        return machine

    def _build(self, spec: MachineSpec, base_dir: Path, problems: list[tuple[Path_, str]]) -> None:
        flat: list[tuple[Any, Path_, Any]] = []  # (spec, path, parent spec)

        def walk(items: list[Any], path: Path_, parent: Any) -> None:
            for i, item in enumerate(items):
                flat.append((item, (*path, i), parent))
                walk(item.subregions, (*path, i, "subregions"), item)

        walk(spec.regions, ("regions",), None)

        for item, path, _parent in flat:
            key = item.key
            if key in self.declared:
                first = self.declared[key].path
                field = "id" if item.id is not None else "name"
                problems.append(
                    (
                        (*path, field),
                        f"duplicate id {key!r} (first used at "
                        f"{_fmt(first)}); give one of them a unique id",
                    )
                )
                continue
            self.declared[key] = Declared(item, path)

        # Plain regions first, then aliases once their targets exist (aliases may chain).
        for item, path, _parent in flat:
            if isinstance(item, AliasSpec) or self.declared.get(item.key, None) is None:
                continue
            if self.declared[item.key].path != path:
                continue
            try:
                self._add(item.key, self._create(item, base_dir))
            except (ValueError, MemoryModelError) as e:
                field = "file" if getattr(item, "file", None) else "size"
                problems.append(((*path, field), str(e)))
        pending = [
            (i, p)
            for i, p, _ in flat
            if isinstance(i, AliasSpec) and self.declared[i.key].path == p
        ]
        while pending:
            later = []
            for item, path in pending:
                target = self.regions.get(item.target)
                if target is None:
                    later.append((item, path))
                    continue
                try:
                    mr = self.system.alias(item.name, target, item.offset, item.size)
                except (ValueError, MemoryModelError) as e:
                    problems.append(((*path, "size"), str(e)))
                    continue
                self._add(item.key, mr)
            if len(later) == len(pending):
                for item, path in later:
                    if item.target in self.declared:
                        message = f"alias chain through {item.target!r} loops back on itself"
                    else:
                        message = f"target {item.target!r} is not the id of any region"
                    problems.append(((*path, "target"), message))
                break
            pending = later
        if problems:
            return

        with self.system.transaction():
            for item, path, parent in flat:
                mr = self.regions[item.key]
                mr.enabled = item.enabled
                mr.readonly = item.readonly or mr.kind is RegionKind.ROM
                mr.nonvolatile = item.nonvolatile
                if isinstance(item, RomdSpec):
                    mr.romd_mode = item.romd_mode
                if parent is None:  # unmapped, but its addr and priority still print
                    mr.addr, mr.priority = item.addr, item.priority
                    continue
                try:
                    self.regions[parent.key].add_subregion(item.addr, mr, item.priority)
                except MemoryModelError as e:
                    problems.append((path, str(e)))
        if problems:
            return
        # Address spaces last: each renders once, when it is created.
        seen: dict[str, int] = {}
        for i, as_spec in enumerate(spec.address_spaces):
            path = ("address_spaces", i)
            key = as_spec.key
            if key in seen:
                field = "id" if as_spec.id is not None else "name"
                problems.append(
                    (
                        (*path, field),
                        f"duplicate address space id {key!r} (first used at "
                        f"address_spaces[{seen[key]}]); give one of them a unique id",
                    )
                )
                continue
            seen[key] = i
            root = self.regions.get(as_spec.root)
            if root is None:
                problems.append(((*path, "root"), f"{as_spec.root!r} is not the id of any region"))
                continue
            self.spaces[key] = self.system.address_space(as_spec.name, root)

    def _create(self, item: Any, base_dir: Path) -> MemoryRegion:
        system = self.system
        data = None
        if getattr(item, "file", None):
            data = load_file_contents(item.file, base_dir, item.size)
        if item.kind == "container":
            return system.container(item.name, item.size)
        if item.kind == "ram":
            return system.ram(item.name, item.size, data)
        if item.kind == "rom":
            return system.rom(item.name, item.size, data)
        if item.kind == "romd":
            return system.romd(item.name, item.size, declared_ops(item), data)
        if item.kind == "mmio":
            mr = system.mmio(item.name, item.size, unassigned=Unassigned(item.unassigned))
            return mr
        raise AssertionError(item.kind)

    def _add(self, key: str, mr: MemoryRegion) -> None:
        self.regions[key] = mr
        self.region_ids[mr] = key

    # -- lookups ------------------------------------------------------------------------------

    def region(self, region_id: str) -> MemoryRegion:
        """The region with this id (``NotFoundError`` if none)."""
        try:
            return self.regions[region_id]
        except KeyError:
            raise NotFoundError(f"no region with id {region_id!r}") from None

    def address_space(self, key: str | None = None) -> AddressSpace:
        """The address space with this id, or the first one when ``key`` is empty."""
        if not key:
            if not self.system.address_spaces:
                raise NotFoundError("this machine has no address space")
            return self.system.address_spaces[0]
        try:
            return self.spaces[key]
        except KeyError:
            raise NotFoundError(f"no address space with id {key!r}") from None

    def region_id(self, mr: MemoryRegion) -> str:
        return self.region_ids.get(mr, mr.name)

    def space_id(self, as_: AddressSpace) -> str:
        for key, space in self.spaces.items():
            if space is as_:
                return key
        return as_.name

    # -- topology operations ------------------------------------------------------------------
    # Each records how to undo its bookkeeping, so that MemorySystem.atomic() can roll a whole
    # transaction back (the region tree's own changes are recorded by the model).

    def create_region(self, spec: Any) -> MemoryRegion:
        """Create an unmapped region from a description entry (a ``Region`` spec without
        subregions); its id is ``spec.key``."""
        key = spec.key
        if key in self.regions:
            raise AlreadyExistsError(f"a region with id {key!r} already exists")
        if spec.subregions:
            raise MemoryModelError("create subregions one by one and map them with add_subregion")
        if isinstance(spec, AliasSpec):
            mr = self.system.alias(spec.name, self.region(spec.target), spec.offset, spec.size)
        else:
            mr = self._create(spec, Path("."))
        mr.enabled = spec.enabled
        mr.readonly = spec.readonly or mr.kind is RegionKind.ROM
        mr.nonvolatile = spec.nonvolatile
        if isinstance(spec, RomdSpec):
            mr.romd_mode = spec.romd_mode
        mr.addr, mr.priority = spec.addr, spec.priority
        self._add(key, mr)
        self.declared[key] = Declared(spec, ())

        def undo() -> None:
            del self.regions[key]
            del self.region_ids[mr]
            del self.declared[key]

        self.system._record(undo)
        return mr

    def delete_region(self, region_id: str) -> None:
        """Unmap and forget a region; its subregions stay, unmapped. Refused while it is an
        address space's root or an alias's target."""
        mr = self.region(region_id)
        for key, as_ in self.spaces.items():
            if as_.root is mr:
                raise InUseError(f"region {region_id!r} is the root of address space {key!r}")
        for other_id, other in self.regions.items():
            if other.alias is mr:
                raise InUseError(f"region {region_id!r} is the target of alias {other_id!r}")
        with self.system.transaction():
            if mr.container is not None:
                mr.container.del_subregion(mr)
            for sub in mr.subregions:
                mr.del_subregion(sub)
            declared = self.declared.pop(region_id, None)
            order = list(self.regions)
            del self.regions[region_id]
            del self.region_ids[mr]

            def undo() -> None:
                self._add(region_id, mr)
                self.regions = {key: self.regions[key] for key in order}  # creation order
                if declared is not None:
                    self.declared[region_id] = declared

            self.system._record(undo)

    def add_subregion(self, parent_id: str, child_id: str, addr: int, priority: int = 0) -> None:
        self.region(parent_id).add_subregion(addr, self.region(child_id), priority)

    def remove_subregion(self, child_id: str) -> None:
        child = self.region(child_id)
        if child.container is None:
            from mmiobus.memory.errors import NotMappedError

            raise NotMappedError(f"region {child_id!r} is not mapped anywhere")
        child.container.del_subregion(child)

    def create_address_space(self, key: str, name: str, root_id: str) -> AddressSpace:
        if key in self.spaces:
            raise AlreadyExistsError(f"an address space with id {key!r} already exists")
        as_ = self.system.address_space(name or key, self.region(root_id))
        self.spaces[key] = as_
        self.system._record(lambda: self.spaces.pop(key, None))
        return as_


def _fmt(path: Path_) -> str:
    return format_path(path)
