"""Machines: a memory system built from a description, with the ids that name its parts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmiobus.memory.access import Endianness
from mmiobus.memory.addrspace import AddressSpace
from mmiobus.memory.errors import (
    AlreadyExistsError,
    InUseError,
    MemoryModelError,
    NotFoundError,
    NotMappedError,
)
from mmiobus.memory.region import MemoryRegion
from mmiobus.memory.system import MemorySystem

from .builtin import builtin_text
from .contents import ContentsError
from .cpu_checks import check_cpus
from .cpus import CpuSpec
from .description import parse_text
from .description import require_address_space as _require_address_space
from .device_class import DeviceSpecError, resolve_device_class
from .errors import DescriptionError, Path_, format_path
from .regions import new_region, set_flags
from .schema import AliasSpec, InProcessDevice, MachineSpec

Problems = list[tuple[Path_, str]]


@dataclass
class Declared:
    """Where a region came from in its description."""

    spec: Any
    path: Path_


@dataclass
class _Entry:
    """A region of the description being built: its spec, path and parent's spec."""

    spec: Any
    path: Path_
    parent: Any


def _flatten(spec: MachineSpec) -> list[_Entry]:
    """Every region of the description, parents before their subregions, in file order."""
    out: list[_Entry] = []

    def walk(items: list[Any], path: Path_, parent: Any) -> None:
        for i, item in enumerate(items):
            out.append(_Entry(item, (*path, i), parent))
            walk(item.subregions, (*path, i, "subregions"), item)

    walk(spec.regions, ("regions",), None)
    return out


class Machine:
    """A ``MemorySystem`` plus the ids (region ids, address-space names) that descriptions,
    RPCs and the command line use to refer to its parts."""

    def __init__(self, endianness: Endianness = Endianness.LITTLE) -> None:
        self.system = MemorySystem(endianness)
        self.regions: dict[str, MemoryRegion] = {}
        self.region_ids: dict[MemoryRegion, str] = {}
        self.spaces: dict[str, AddressSpace] = {}
        self.declared: dict[str, Declared] = {}
        self.cpus: dict[str, CpuSpec] = {}
        self.source = ""
        self.base_dir = Path(".")

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_text(
        cls,
        text: str,
        base_dir: Path | str = ".",
        source: str = "",
        *,
        require_address_space: bool = False,
    ) -> Machine:
        """The machine YAML ``text`` describes; ``file:`` paths start at ``base_dir`` and
        errors name ``source``. With ``require_address_space``, a description with no address
        space is an error (one to serve must have one). Raises ``DescriptionError``."""
        spec, locate = parse_text(text, source)
        if require_address_space:
            _require_address_space(spec, source, locate)
        return cls.from_spec(spec, Path(base_dir), source, locate)

    @classmethod
    def from_file(cls, path: Path | str, *, require_address_space: bool = False) -> Machine:
        """The machine the YAML file at ``path`` describes (see ``from_text``)."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            problems: Problems = [((), f"cannot read the file: {e.strerror or e}")]
            raise DescriptionError(problems, str(path)) from None
        machine = cls.from_text(
            text, path.parent, str(path), require_address_space=require_address_space
        )
        machine.source = str(path)
        return machine

    @classmethod
    def builtin(cls, name: str) -> Machine:
        """The built-in machine ``name`` (``mmiobus.machine.builtin`` lists them); an unknown
        name raises ``MachineNotFoundError``, which lists the names there are."""
        source = f"<{name} machine>"
        machine = cls.from_text(builtin_text(name), ".", source)
        machine.source = source
        return machine

    @classmethod
    def default(cls) -> Machine:
        """The built-in default machine (RAM, a boot ROM, windows for the example devices)."""
        return cls.builtin("default")

    @classmethod
    def from_spec(
        cls, spec: MachineSpec, base_dir: Path, source: str = "", locate: Any = None
    ) -> Machine:
        """Build a checked spec; problems (ids, targets, files, devices, overlaps) raise one
        ``DescriptionError`` listing them all, placed with ``locate`` when given."""
        machine = cls(Endianness(spec.endianness))
        machine.base_dir = base_dir
        problems: Problems = []
        machine._build(spec, base_dir, problems)
        if problems:
            raise DescriptionError(problems, source, locate)
        return machine

    def _build(self, spec: MachineSpec, base_dir: Path, problems: Problems) -> None:
        # Regions are made even after a problem, so that one load reports as many as it can;
        # mapping and address spaces wait until every region exists, so that one mistake is
        # not reported again as its consequences.
        entries = self._declare(_flatten(spec), problems)
        _check_devices(entries, problems)
        self._create_regions(entries, base_dir, problems)
        self._create_aliases(entries, problems)
        if not problems:
            self._map(entries, problems)
        if not problems:
            self._create_spaces(spec, problems)
        if not problems:
            self.cpus = check_cpus(self, spec.cpus, problems)

    def _declare(self, entries: list[_Entry], problems: Problems) -> list[_Entry]:
        """Record each region's id; returns the entries whose id is not a duplicate."""
        kept = []
        for entry in entries:
            item, path = entry.spec, entry.path
            key = item.key
            if key in self.declared:
                field = "id" if item.id is not None else "name"
                problems.append(
                    (
                        (*path, field),
                        f"duplicate id {key!r} (first used at "
                        f"{format_path(self.declared[key].path)}); give one of them a unique id",
                    )
                )
                continue
            self.declared[key] = Declared(item, path)
            kept.append(entry)
        return kept

    def _create_regions(self, entries: list[_Entry], base_dir: Path, problems: Problems) -> None:
        """Every region but the aliases, unmapped."""
        for entry in entries:
            item = entry.spec
            if isinstance(item, AliasSpec):
                continue
            try:
                self._add(item.key, new_region(self.system, item, base_dir))
            except ContentsError as e:
                problems.append(((*entry.path, "file"), str(e)))
            except (ValueError, MemoryModelError) as e:
                problems.append(((*entry.path, "size"), str(e)))

    def _create_aliases(self, entries: list[_Entry], problems: Problems) -> None:
        """The aliases, each once its target exists (aliases may target aliases)."""
        pending = [entry for entry in entries if isinstance(entry.spec, AliasSpec)]
        while pending:
            later = []
            for entry in pending:
                item = entry.spec
                target = self.regions.get(item.target)
                if target is None:
                    later.append(entry)
                    continue
                try:
                    mr = self.system.alias(item.name, target, item.offset, item.size)
                except (ValueError, MemoryModelError) as e:
                    problems.append(((*entry.path, "size"), str(e)))
                    continue
                self._add(item.key, mr)
            if len(later) == len(pending):  # no progress: the rest can never be made
                for entry in later:
                    target_id = entry.spec.target
                    if target_id in self.declared:
                        message = f"alias chain through {target_id!r} loops back on itself"
                    else:
                        message = f"target {target_id!r} is not the id of any region"
                    problems.append(((*entry.path, "target"), message))
                return
            pending = later

    def _map(self, entries: list[_Entry], problems: Problems) -> None:
        """Set each region's flags and add it to its parent, in one transaction."""
        with self.system.transaction():
            for entry in entries:
                item, parent = entry.spec, entry.parent
                mr = self.regions[item.key]
                set_flags(mr, item)
                if parent is None:  # unmapped, but its addr and priority still print
                    mr.addr, mr.priority = item.addr, item.priority
                    continue
                try:
                    self.regions[parent.key].add_subregion(item.addr, mr, item.priority)
                except MemoryModelError as e:
                    problems.append((entry.path, str(e)))

    def _create_spaces(self, spec: MachineSpec, problems: Problems) -> None:
        """The address spaces, last: each renders once, when it is created."""
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
        """The id of ``mr`` (its name when the machine does not know it)."""
        return self.region_ids.get(mr, mr.name)

    def space_id(self, as_: AddressSpace) -> str:
        """The id of address space ``as_`` (its name when the machine does not know it)."""
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
            mr = new_region(self.system, spec, Path("."))
        set_flags(mr, spec)
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
        """Map region ``child_id`` into ``parent_id`` at ``addr`` (QEMU's add_subregion)."""
        self.region(parent_id).add_subregion(addr, self.region(child_id), priority)

    def remove_subregion(self, child_id: str) -> None:
        """Unmap region ``child_id`` from its container (``NotMappedError`` if in none)."""
        child = self.region(child_id)
        if child.container is None:
            raise NotMappedError(f"region {child_id!r} is not mapped anywhere")
        child.container.del_subregion(child)

    def create_address_space(self, key: str, name: str, root_id: str) -> AddressSpace:
        """A new address space with id ``key`` over region ``root_id``; ``name`` defaults to
        the id."""
        if key in self.spaces:
            raise AlreadyExistsError(f"an address space with id {key!r} already exists")
        as_ = self.system.address_space(name or key, self.region(root_id))
        self.spaces[key] = as_

        def undo() -> None:
            self.spaces.pop(key, None)

        self.system._record(undo)
        return as_

    def delete_address_space(self, key: str) -> None:
        """Delete the address space with id ``key`` (``MemorySystem.remove_address_space``);
        its regions stay. Refused (``InUseError``) while a CPU of the machine runs in it."""
        as_ = self.spaces.get(key)
        if as_ is None:
            raise NotFoundError(f"no address space with id {key!r}")
        for name, cpu in self.cpus.items():
            if (cpu.address_space or self.space_id(self.system.address_spaces[0])) == key:
                raise InUseError(f"address space {key!r} is where CPU {name!r} runs")
        self.system.remove_address_space(as_)
        before = dict(self.spaces)
        del self.spaces[key]

        def undo() -> None:
            self.spaces.clear()
            self.spaces.update(before)  # in creation order again

        self.system._record(undo)


def _check_devices(entries: list[_Entry], problems: Problems) -> None:
    """Each device the server would run itself imports, is a ``Device`` and takes its args."""
    for entry in entries:
        device = getattr(entry.spec, "device", None)
        if not isinstance(device, InProcessDevice):
            continue
        try:
            resolve_device_class(device)
        except DeviceSpecError as e:
            problems.append(((*entry.path, "device", e.field), e.message))
