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

from mmiobus import wire
from mmiobus.units import parse_region_size, parse_u64
from mmiobus.v1 import bus_pb2 as pb

_KINDS = ("container", "ram", "rom", "romd", "mmio", "alias")
_ENDIANNESS = ("native", "little", "big")
_UNASSIGNED = ("memory", "io")
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_UINT32 = (1 << 32) - 1


def _size(value: int | str, what: str = "size") -> int:
    """A region size (0..2**64, units allowed) as the wire carries it."""
    _number(value, what)
    try:
        return wire.size_to_pb(parse_region_size(value))
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def _u64(value: int | str, what: str) -> int:
    _number(value, what)
    try:
        return parse_u64(value)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def _number(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{what} {value!r} is not a number (e.g. 4096, 0x1000 or 4K)")


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} {value!r} is not a string")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not true or false")
    return value


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} {value!r} is not an integer")
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} is outside {lo}..{hi}")
    return value


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(
            f"{what} must be bytes, not {type(value).__name__} (in YAML, use `file: PATH`)"
        )
    return bytes(value)


def _spec(value: Any, what: str) -> pb.AccessSpec:
    if not isinstance(value, dict):
        raise ValueError(f"{what} {value!r} is not a mapping such as {{min: 1, max: 4}}")
    unknown = set(value) - {"min", "max", "unaligned"}
    if unknown:
        raise ValueError(
            f"{what}: unknown access-size field {sorted(unknown)[0]!r} (min, max, unaligned)"
        )
    return pb.AccessSpec(
        min=_int(value.get("min", 0), f"{what}.min", 0, _UINT32),
        max=_int(value.get("max", 0), f"{what}.max", 0, _UINT32),
        unaligned=_bool(value.get("unaligned", False), f"{what}.unaligned"),
    )


def _choice(choices: tuple[str, ...], value: Any, what: str) -> str:
    if value not in choices:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(choices)}")
    return str(value)


class Transaction:
    """Operations to apply together; see the module docstring. Each method checks its
    arguments (``ValueError`` naming the field) and returns the transaction, for chaining."""

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
        fields: dict[str, Any] = {
            "id": _str(id, "id"),
            "name": _str(name, "name"),
            "kind": wire.kind_to_pb(_choice(_KINDS, kind, "kind")),
            "size": _size(size),
            "target": _str(target, "target"),
            "offset": _u64(offset, "offset"),
            "contents": _bytes(contents, "contents"),
            "endianness": wire.endianness_to_pb(_choice(_ENDIANNESS, endianness, "endianness")),
            "unassigned": wire.unassigned_to_pb(_choice(_UNASSIGNED, unassigned, "unassigned")),
            "readonly": _bool(readonly, "readonly"),
            "nonvolatile": _bool(nonvolatile, "nonvolatile"),
        }
        op = pb.CreateRegion(**fields)
        if valid is not None:
            op.valid.CopyFrom(_spec(valid, "valid"))
        if impl is not None:
            op.impl.CopyFrom(_spec(impl, "impl"))
        return self._add(create_region=op)

    def delete_region(self, id: str) -> Transaction:
        """Delete an unmapped region."""
        return self._add(delete_region=pb.DeleteRegion(id=_str(id, "id")))

    def add_subregion(
        self, parent: str, child: str, addr: int | str, priority: int = 0
    ) -> Transaction:
        """Map ``child`` at ``addr`` inside the container ``parent``."""
        return self._add(
            add_subregion=pb.AddSubregion(
                parent=_str(parent, "parent"),
                child=_str(child, "child"),
                addr=_u64(addr, "addr"),
                priority=_int(priority, "priority", _INT32_MIN, _INT32_MAX),
            )
        )

    def remove_subregion(self, child: str) -> Transaction:
        """Unmap a region from its container."""
        return self._add(remove_subregion=pb.RemoveSubregion(child=_str(child, "child")))

    def set_address(self, id: str, addr: int | str) -> Transaction:
        """Move a mapped region within its container."""
        return self._add(set_address=pb.SetAddress(id=_str(id, "id"), addr=_u64(addr, "addr")))

    def set_priority(self, id: str, priority: int) -> Transaction:
        """Change a mapped region's priority."""
        return self._add(
            set_priority=pb.SetPriority(
                id=_str(id, "id"), priority=_int(priority, "priority", _INT32_MIN, _INT32_MAX)
            )
        )

    def set_enabled(self, id: str, enabled: bool) -> Transaction:
        """Enable or disable a region."""
        return self._add(
            set_enabled=pb.SetEnabled(id=_str(id, "id"), enabled=_bool(enabled, "enabled"))
        )

    def set_alias_offset(self, id: str, offset: int | str) -> Transaction:
        """Slide an alias over its target."""
        return self._add(
            set_alias_offset=pb.SetAliasOffset(id=_str(id, "id"), offset=_u64(offset, "offset"))
        )

    def set_size(self, id: str, size: int | str) -> Transaction:
        """Resize a region."""
        return self._add(set_size=pb.SetSize(id=_str(id, "id"), size=_size(size)))

    def set_readonly(self, id: str, readonly: bool) -> Transaction:
        """Set a region's readonly flag."""
        return self._add(
            set_readonly=pb.SetReadonly(id=_str(id, "id"), readonly=_bool(readonly, "readonly"))
        )

    def set_romd(self, id: str, romd_mode: bool) -> Transaction:
        """Switch a ROM device between ROMD mode and MMIO mode."""
        return self._add(
            set_romd=pb.SetRomd(id=_str(id, "id"), romd_mode=_bool(romd_mode, "romd_mode"))
        )

    def create_address_space(self, id: str, root: str, name: str = "") -> Transaction:
        """A new address space whose root is the region ``root``."""
        return self._add(
            create_address_space=pb.CreateAddressSpace(
                id=_str(id, "id"), name=_str(name, "name"), root=_str(root, "root")
            )
        )

    def delete_address_space(self, id: str) -> Transaction:
        """Delete an address space (its regions stay); its topology watchers' streams end."""
        return self._add(delete_address_space=pb.DeleteAddressSpace(id=_str(id, "id")))


OPERATIONS = [
    name
    for name, fn in inspect.getmembers(Transaction, inspect.isfunction)
    if not name.startswith("_")
]


def from_yaml(text: str, base_dir: Path | str = ".", source: str = "") -> Transaction:
    """Operations written as YAML 1.2 (a list of ``{operation: {field: value}}``); errors
    (``ValueError``) name the entry (``ops[2].add_subregion: ...``), and ``source`` with line
    and column when the YAML itself is malformed. ``file: PATH`` in create_region loads
    contents, relative to ``base_dir``."""
    # The project's one YAML loader lives with the machine descriptions, which load pydantic:
    # import it here so that `import mmiobus.client` stays light.
    from mmiobus.machine.yamlio import load_yaml

    data, _locate = load_yaml(text, source)
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
        if fields is None:
            fields = {}
        if not isinstance(fields, dict):
            raise ValueError(
                f"ops[{i}].{name}: expected fields such as {{id: ...}}, not {fields!r}"
            )
        fields = dict(fields)
        method = getattr(t, name)
        try:
            if name == "create_region" and "file" in fields:
                contents = _file_contents(fields.pop("file"), fields.get("size"), base_dir)
                if contents is not None:
                    fields["contents"] = contents
            _check_fields(method, fields)
            method(**fields)
        except ValueError as e:
            raise ValueError(f"ops[{i}].{name}: {e}") from None
    return t


def _file_contents(file: Any, size: Any, base_dir: Path | str) -> bytes | None:
    """The contents ``file: PATH`` gives a region of ``size`` bytes, read as machine
    descriptions read theirs: never more than the region holds (a bigger file, or one that is
    not a regular file, is refused before it is read). None when the size itself is wrong,
    which the operation then reports."""
    from mmiobus.machine.contents import ContentsError, load_file_contents

    try:
        limit = parse_region_size(size)
    except (ValueError, TypeError):
        return None
    try:
        return load_file_contents(str(file), Path(base_dir), limit)
    except ContentsError as e:
        raise ValueError(f"file: {e}") from None


def _check_fields(method: Any, fields: dict[Any, Any]) -> None:
    """Unknown or missing fields, said in YAML's words (not Python's ``TypeError``)."""
    params = inspect.signature(method).parameters
    known = list(params)
    for key in fields:
        if key not in params:
            extra = ", file" if method.__name__ == "create_region" else ""
            raise ValueError(f"unknown field {key!r} (fields: {', '.join(known)}{extra})")
    missing = [p.name for p in params.values() if p.default is p.empty and p.name not in fields]
    if missing:
        raise ValueError(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
