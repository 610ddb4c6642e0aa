"""Topology transactions: build a list of operations, apply them all or none.

    with bus.transaction() as t:          # applied when the block ends without an exception
        t.create_region("scratch", "ram", "64K")
        t.add_subregion("system", "scratch", 0x2000_0000)

The same operations, written as YAML, are what `mmiobus apply FILE` reads::

    - create_region: {id: scratch, kind: ram, size: 64K}
    - add_subregion: {parent: system, child: scratch, addr: 0x20000000}
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import yaml
from mmiobus.units import parse_size
from mmiobus.v1 import bus_pb2 as pb

MASK64 = (1 << 64) - 1
_KINDS = {
    "container": pb.CONTAINER,
    "ram": pb.RAM,
    "rom": pb.ROM,
    "romd": pb.ROMD,
    "mmio": pb.MMIO,
    "alias": pb.ALIAS,
}
_ENDIAN = {"native": pb.NATIVE, "little": pb.LITTLE, "big": pb.BIG}
_UNASSIGNED = {"memory": pb.UNASSIGNED_MEMORY, "io": pb.UNASSIGNED_IO}


def _size(value: int | str) -> int:
    n = parse_size(value)
    if not 0 <= n <= 1 << 64:
        raise ValueError(f"size {value!r} is outside 0..2**64")
    return MASK64 if n == 1 << 64 else n


def _u64(value: int | str) -> int:
    n = parse_size(value)
    if not 0 <= n <= MASK64:
        raise ValueError(f"{value!r} is outside 0..2**64-1")
    return n


def _spec(value: dict[str, Any] | None) -> pb.AccessSpec | None:
    if value is None:
        return None
    unknown = set(value) - {"min", "max", "unaligned"}
    if unknown:
        raise ValueError(f"unknown access-size field {sorted(unknown)[0]!r} (min, max, unaligned)")
    return pb.AccessSpec(**value)


def _choice(table: dict[str, int], value: str, what: str) -> int:
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(table)}") from None


class Transaction:
    """Operations to apply together; see the module docstring."""

    def __init__(self) -> None:
        self.ops: list[pb.TopologyOp] = []

    def _add(self, **op: Any) -> Transaction:
        self.ops.append(pb.TopologyOp(**op))
        return self

    def create_region(
        self,
        id: str,
        kind: str,
        size: int | str,
        *,
        name: str = "",
        target: str = "",
        offset: int | str = 0,
        contents: bytes = b"",
        valid: dict[str, Any] | None = None,
        impl: dict[str, Any] | None = None,
        endianness: str = "native",
        unassigned: str = "memory",
        readonly: bool = False,
        nonvolatile: bool = False,
    ) -> Transaction:
        """A new, unmapped region (``kind``: container, ram, rom, romd, mmio, alias)."""
        op = pb.CreateRegion(
            id=id,
            name=name,
            kind=_choice(_KINDS, kind, "kind"),
            size=_size(size),
            target=target,
            offset=_u64(offset),
            contents=bytes(contents),
            endianness=_choice(_ENDIAN, endianness, "endianness"),
            unassigned=_choice(_UNASSIGNED, unassigned, "unassigned"),
            readonly=readonly,
            nonvolatile=nonvolatile,
        )
        if valid is not None:
            op.valid.CopyFrom(_spec(valid))
        if impl is not None:
            op.impl.CopyFrom(_spec(impl))
        return self._add(create_region=op)

    def delete_region(self, id: str) -> Transaction:
        return self._add(delete_region=pb.DeleteRegion(id=id))

    def add_subregion(
        self, parent: str, child: str, addr: int | str, priority: int = 0
    ) -> Transaction:
        return self._add(
            add_subregion=pb.AddSubregion(
                parent=parent, child=child, addr=_u64(addr), priority=priority
            )
        )

    def remove_subregion(self, child: str) -> Transaction:
        return self._add(remove_subregion=pb.RemoveSubregion(child=child))

    def set_address(self, id: str, addr: int | str) -> Transaction:
        return self._add(set_address=pb.SetAddress(id=id, addr=_u64(addr)))

    def set_priority(self, id: str, priority: int) -> Transaction:
        return self._add(set_priority=pb.SetPriority(id=id, priority=priority))

    def set_enabled(self, id: str, enabled: bool) -> Transaction:
        return self._add(set_enabled=pb.SetEnabled(id=id, enabled=enabled))

    def set_alias_offset(self, id: str, offset: int | str) -> Transaction:
        return self._add(set_alias_offset=pb.SetAliasOffset(id=id, offset=_u64(offset)))

    def set_size(self, id: str, size: int | str) -> Transaction:
        return self._add(set_size=pb.SetSize(id=id, size=_size(size)))

    def set_readonly(self, id: str, readonly: bool) -> Transaction:
        return self._add(set_readonly=pb.SetReadonly(id=id, readonly=readonly))

    def set_romd(self, id: str, romd_mode: bool) -> Transaction:
        return self._add(set_romd=pb.SetRomd(id=id, romd_mode=romd_mode))

    def create_address_space(self, id: str, root: str, name: str = "") -> Transaction:
        return self._add(create_address_space=pb.CreateAddressSpace(id=id, name=name, root=root))


OPERATIONS = [
    name
    for name, fn in inspect.getmembers(Transaction, inspect.isfunction)
    if not name.startswith("_")
]


def from_yaml(text: str, base_dir: Path | str = ".") -> Transaction:
    """Operations written as YAML (a list of ``{operation: {field: value}}``); errors name the
    entry (``ops[2].add_subregion: ...``). ``file: PATH`` in create_region loads contents."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"not valid YAML: {e}") from None
    if isinstance(data, dict) and "ops" in data:
        data = data["ops"]
    if not isinstance(data, list):
        raise ValueError(
            "expected a list of operations, e.g. `- set_enabled: {id: uart0, enabled: false}`"
        )
    t = Transaction()
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"ops[{i}]: each entry is one operation: `- name: {{fields}}`")
        [(name, fields)] = entry.items()
        if name not in OPERATIONS:
            raise ValueError(
                f"ops[{i}]: unknown operation {name!r} (one of {', '.join(OPERATIONS)})"
            )
        fields = dict(fields or {})
        if name == "create_region" and "file" in fields:
            path = Path(base_dir) / str(fields.pop("file"))
            try:
                fields["contents"] = path.read_bytes()
            except OSError as e:
                raise ValueError(
                    f"ops[{i}].create_region.file: cannot read {path}: {e.strerror}"
                ) from None
        try:
            getattr(t, name)(**fields)
        except TypeError as e:
            raise ValueError(f"ops[{i}].{name}: {str(e).split(') ', 1)[-1]}") from None
        except ValueError as e:
            raise ValueError(f"ops[{i}].{name}: {e}") from None
    return t
