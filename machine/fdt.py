"""A small flattened device tree (DTB) writer.

The format (Devicetree Specification v0.4, chapter 5) is a big-endian blob:
a 40-byte header, a memory reservation block (pairs of u64 address/size,
ended by a zero pair), a structure block of 32-bit tokens (FDT_BEGIN_NODE
name, FDT_PROP len nameoff value, FDT_END_NODE, FDT_END) padded to 4 bytes,
and a strings block holding each property name once.

Build a tree with :class:`Node`, then call :func:`to_dtb`::

    root = Node("", {"#address-cells": 2, "#size-cells": 2})
    root.add("memory@80000000", device_type="memory", reg=cells(0, 0x80000000, 0, 1 << 27))
    root.add("chosen", {"stdout-path": "/soc/serial@10000000"})
    blob = to_dtb(root)

Property values: ``str`` becomes a NUL-terminated string, a ``list``/``tuple``
of ``str`` a string list, ``int`` one u32 cell, :func:`cells` (or a list of
ints) several u32 cells, ``bytes`` raw bytes, ``True`` an empty property.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE = 1
FDT_END_NODE = 2
FDT_PROP = 3
FDT_END = 9
_VERSION = 17
_LAST_COMP_VERSION = 16
_HEADER_SIZE = 40

PropValue = str | int | bool | bytes | Sequence[int] | Sequence[str]


class Cells(tuple):
    """A sequence of u32 cells (a ``<...>`` value in DTS)."""


def cells(*values: int) -> Cells:
    """Return *values* as u32 cells; each must fit in 32 bits."""
    for v in values:
        if not 0 <= v <= 0xFFFFFFFF:
            raise ValueError(f"cell value {v:#x} does not fit in 32 bits")
    return Cells(values)


def u64(value: int) -> Cells:
    """Return a 64-bit *value* as two cells (high, low)."""
    return cells(value >> 32, value & 0xFFFFFFFF)


def encode_value(value: PropValue) -> bytes:
    """Encode one property value to its on-blob bytes."""
    if value is True:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode() + b"\0"
    if isinstance(value, int):
        return struct.pack(">I", cells(value)[0])
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value) and value:
            return b"".join(v.encode() + b"\0" for v in value)  # type: ignore[union-attr]
        return struct.pack(f">{len(value)}I", *cells(*value))  # type: ignore[arg-type]
    raise TypeError(f"unsupported property value {value!r}")


@dataclass
class Node:
    """One device tree node: a name (``unit@addr``), properties in order, children."""

    name: str
    props: dict[str, PropValue] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)

    def add(self, name: str, props: dict[str, PropValue] | None = None, **kw: PropValue) -> Node:
        """Create a child node and return it. Keyword arguments are properties
        named exactly as written (``device_type=...``); names with ``-``, ``,``
        or ``#`` go in *props*."""
        merged = dict(props or {})
        merged.update(kw)
        child = Node(name, merged)
        self.children.append(child)
        return child

    def find(self, path: str) -> Node:
        """Return the node at *path* (``/soc/serial@10000000``); KeyError if absent."""
        node = self
        for part in filter(None, path.split("/")):
            for child in node.children:
                if child.name == part:
                    node = child
                    break
            else:
                raise KeyError(path)
        return node


class _Strings:
    def __init__(self) -> None:
        self.blob = bytearray()
        self.offsets: dict[str, int] = {}

    def offset(self, name: str) -> int:
        if name not in self.offsets:
            self.offsets[name] = len(self.blob)
            self.blob += name.encode() + b"\0"
        return self.offsets[name]


def _pad4(data: bytearray) -> None:
    data += b"\0" * (-len(data) % 4)


def _emit(node: Node, out: bytearray, strings: _Strings) -> None:
    out += struct.pack(">I", FDT_BEGIN_NODE) + node.name.encode() + b"\0"
    _pad4(out)
    for name, value in node.props.items():
        data = encode_value(value)
        out += struct.pack(">III", FDT_PROP, len(data), strings.offset(name)) + data
        _pad4(out)
    for child in node.children:
        _emit(child, out, strings)
    out += struct.pack(">I", FDT_END_NODE)


def to_dtb(
    root: Node, reserved: Iterable[tuple[int, int]] = (), boot_cpuid: int = 0, pad: int = 0
) -> bytes:
    """Serialise the tree under *root* (whose name must be empty) to a DTB.

    *reserved* lists (address, size) memory reservations; *pad* adds free
    space at the end so a bootloader can edit the tree in place.
    """
    if root.name:
        raise ValueError("the root node's name must be empty")
    rsv = bytearray()
    for addr, size in reserved:
        rsv += struct.pack(">QQ", addr, size)
    rsv += struct.pack(">QQ", 0, 0)
    strings = _Strings()
    struct_block = bytearray()
    _emit(root, struct_block, strings)
    struct_block += struct.pack(">I", FDT_END)
    off_rsv = _HEADER_SIZE  # already 8-byte aligned
    off_struct = off_rsv + len(rsv)
    off_strings = off_struct + len(struct_block)
    total = off_strings + len(strings.blob)
    total += -total % 8 + pad
    header = struct.pack(
        ">10I",
        FDT_MAGIC,
        total,
        off_struct,
        off_strings,
        off_rsv,
        _VERSION,
        _LAST_COMP_VERSION,
        boot_cpuid,
        len(strings.blob),
        len(struct_block),
    )
    blob = header + rsv + struct_block + strings.blob
    return blob + b"\0" * (total - len(blob))
