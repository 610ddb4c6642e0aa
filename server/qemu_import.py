"""Turn QEMU's ``info mtree -D`` + ``info mtree -f`` text into a machine description.

The tree dump gives every region's name, place, size, priority, type and enabled flag, but it
prints pure containers and I/O regions alike as ``i/o``, does not say which aliases are
read-only, and cannot tell a 0-byte region from a 1-byte one. The flat-view dump settles those:

* an ``i/o`` region that shows up as a range in some flat view terminates (an ``mmio`` region;
  with subregions it is a "background" region, which in QEMU machines serves PCI-style
  unassigned I/O, so it gets ``unassigned: io``); one that never shows up is a container when it
  is enabled or has subregions, and a reservation (``mmio`` with no ops) otherwise;
* a ``start-start`` region is 1 byte when a flat range shows it, else 0 bytes;
* where QEMU prints ``rom`` over a region whose own type is ``ram``, the alias that maps it is
  read-only.

``memory-region:`` sections (alias targets) that repeat a region already printed in an address
space are matched to it by name, place and shape, so each region is described once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .access import MASK64

AS_LINE = re.compile(r"^address-space: (?P<name>.*)$")
MR_LINE = re.compile(r"^memory-region: (?P<name>.*)$")
TREE_LINE = re.compile(
    r"^(?P<ovf>\[DETECTED OVERFLOW!\] )?(?P<indent>(?:  )+)"
    r"(?P<start>[0-9a-f]{16})-(?P<end>[0-9a-f]{16}) "
    r"\(prio (?P<prio>-?\d+), (?P<nv>nv-)?(?P<type>ramd|romd|rom|ram|i/o|container)\): "
    r"(?:alias (?P<alias>.*?) @(?P<target>.*?) (?P<astart>[0-9a-f]{16})-(?P<aend>[0-9a-f]{16})"
    r"|(?P<name>.*?))(?P<disabled> \[disabled\])?(?P<rest>( orphan| owner:\{.*| parent:\{.*)?)$"
)
FV_HEAD = re.compile(r"^FlatView #(?P<n>\d+)$")
FV_AS = re.compile(r'^ AS "(?P<as>.*)", root: (?P<root>.*?)(?:, alias (?P<alias>.*))?$')
FV_ROOT = re.compile(r"^ Root memory region: (?P<root>.*)$")
FV_EMPTY = re.compile(r"^  No rendered FlatView$")
FV_RANGE = re.compile(
    r"^  (?P<start>[0-9a-f]{16})-(?P<end>[0-9a-f]{16}) "
    r"\(prio (?P<prio>-?\d+), (?P<nv>nv-)?(?P<type>ramd|romd|rom|ram|i/o|container)\): "
    r"(?P<name>.*?)(?: @(?P<off>[0-9a-f]{16}))?(?P<rest>( .*)?)$"
)


class ImportError_(ValueError):
    """The text is not a QEMU ``info mtree`` dump we can read; says which line and why."""


@dataclass(eq=False)
class Node:
    """One printed region line, and then the region it denotes."""

    name: str
    start: int
    end: int
    prio: int
    type: str
    nv: bool
    disabled: bool
    level: int
    lineno: int
    target: str | None = None  # alias target name
    alias_start: int = 0
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None
    # filled in by the importer
    addr: int = 0
    size: int = 0
    kind: str = ""
    id: str = ""
    target_node: Node | None = None
    readonly: bool = False

    @property
    def is_alias(self) -> bool:
        return self.target is not None

    def shape(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.addr,
            self.end - self.start,
            self.prio,
            self.type,
            self.disabled,
            self.target,
            self.alias_start,
            tuple(c.shape() for c in self.children),
        )


@dataclass
class FlatRangeLine:
    start: int
    end: int
    prio: int
    type: str
    nv: bool
    name: str
    offset: int


@dataclass
class FlatViewBlock:
    spaces: list[tuple[str, str]]  # (address space, root name)
    root: str
    ranges: list[FlatRangeLine]


@dataclass
class Dump:
    groups: list[tuple[list[str], Node]]  # address-space names, root
    sections: list[tuple[str, Node]]  # memory-region name, root
    views: list[FlatViewBlock]


def parse_dump(text: str) -> Dump:
    """Read the tree (``info mtree [-D]``) and flat (``info mtree -f``) parts of a dump."""
    groups: list[tuple[list[str], Node]] = []
    sections: list[tuple[str, Node]] = []
    views: list[FlatViewBlock] = []
    pending_as: list[str] = []
    section: str | None = None
    stack: list[Node] = []
    view: FlatViewBlock | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if line.startswith("(qemu)") or not line.strip():
            stack = [] if not line.strip() else stack
            continue
        m = AS_LINE.match(line)
        if m:
            if stack:
                pending_as = []
            stack, section, view = [], None, None
            pending_as.append(m.group("name"))
            continue
        m = MR_LINE.match(line)
        if m:
            stack, pending_as, view = [], [], None
            section = m.group("name")
            continue
        m = FV_HEAD.match(line)
        if m:
            view = FlatViewBlock([], "", [])
            views.append(view)
            stack, pending_as, section = [], [], None
            continue
        if view is not None:
            m = FV_AS.match(line)
            if m:
                view.spaces.append((m.group("as"), m.group("root")))
                continue
            m = FV_ROOT.match(line)
            if m:
                view.root = m.group("root")
                continue
            if FV_EMPTY.match(line):
                continue
            m = FV_RANGE.match(line)
            if m:
                view.ranges.append(
                    FlatRangeLine(
                        int(m.group("start"), 16),
                        int(m.group("end"), 16),
                        int(m.group("prio")),
                        m.group("type"),
                        bool(m.group("nv")),
                        m.group("name"),
                        int(m.group("off") or "0", 16),
                    )
                )
                continue
            continue  # dispatch-tree dumps (-d) and anything else QEMU adds
        m = TREE_LINE.match(line)
        if not m:
            raise ImportError_(f"line {lineno}: not a line of `info mtree` output: {line!r}")
        level = len(m.group("indent")) // 2
        node = Node(
            name=m.group("alias") if m.group("alias") is not None else m.group("name"),
            start=int(m.group("start"), 16),
            end=int(m.group("end"), 16),
            prio=int(m.group("prio")),
            type=m.group("type"),
            nv=bool(m.group("nv")),
            disabled=bool(m.group("disabled")),
            level=level,
            lineno=lineno,
            target=m.group("target"),
            alias_start=int(m.group("astart"), 16) if m.group("astart") else 0,
        )
        while stack and stack[-1].level >= level:
            stack.pop()
        if stack:
            if level != stack[-1].level + 1:
                raise ImportError_(f"line {lineno}: indentation skips a level")
            node.parent = stack[-1]
            stack[-1].children.append(node)
        elif level != 1:
            # A child of a disabled region printed without -D: its parent line is missing.
            raise ImportError_(
                f"line {lineno}: region {node.name!r} has no parent line; "
                "use the output of `info mtree -D` (with disabled regions)"
            )
        elif pending_as:
            groups.append((pending_as, node))
            pending_as = []
        elif section is not None:
            sections.append((section, node))
            section = None
        else:
            raise ImportError_(f"line {lineno}: region line outside an address-space section")
        stack.append(node)
    if not groups and not sections:
        raise ImportError_("no `info mtree` tree found (address-space: ... sections)")
    return Dump(groups, sections, views)


def _walk(node: Node) -> list[Node]:
    out = [node]
    for c in node.children:
        out.extend(_walk(c))
    return out


def _place(node: Node, base: int) -> None:
    node.addr = (node.start - base) & MASK64
    for c in node.children:
        _place(c, node.start)


class _Importer:
    def __init__(self, dump: Dump) -> None:
        self.dump = dump
        self.warnings: list[str] = []
        self.roots: list[Node] = []  # top-level regions, in output order

    def run(self) -> dict[str, Any]:
        dump = self.dump
        for _names, root in dump.groups:
            _place(root, 0)
            self.roots.append(root)
        for _name, root in dump.sections:
            _place(root, 0)
        tree_nodes = [n for r in self.roots for n in _walk(r)]
        # Match memory-region sections to regions already printed, else they are new roots.
        targets: dict[str, list[Node]] = {}
        for name, root in dump.sections:
            shape = root.shape()
            match = next((n for n in tree_nodes if n.name == name and n.shape() == shape), None)
            if match is None:
                self.roots.append(root)
                tree_nodes.extend(_walk(root))
                match = root
            targets.setdefault(name, []).append(match)
        nodes = [n for r in self.roots for n in _walk(r)]
        self._resolve_aliases(nodes, targets)
        terminal = {r.name for v in dump.views for r in v.ranges}
        one_byte = {(r.name, r.start) for v in dump.views for r in v.ranges if r.start == r.end}
        for n in nodes:
            self._classify(n, terminal, one_byte)
        self._assign_ids(nodes)
        return self._description()

    def _resolve_aliases(self, nodes: list[Node], targets: dict[str, list[Node]]) -> None:
        for n in nodes:
            if not n.is_alias:
                continue
            candidates = targets.get(n.target or "", [])
            if not candidates:
                raise ImportError_(
                    f"line {n.lineno}: alias {n.name!r} targets {n.target!r}, which has no "
                    "`memory-region:` section in the dump"
                )
            if len(candidates) > 1:
                self.warnings.append(
                    f"line {n.lineno}: {len(candidates)} regions are named {n.target!r}; "
                    f"alias {n.name!r} was pointed at the first"
                )
            n.target_node = candidates[0]

    def _classify(self, n: Node, terminal: set[str], one_byte: set[tuple[str, int]]) -> None:
        size = ((n.end - n.start) & MASK64) + 1
        if n.start == n.end:
            size = (
                1
                if (n.name, n.start) in one_byte or (n.is_alias and self._alias_shows_one_byte(n))
                else 0
            )
        n.size = size
        if n.is_alias:
            n.kind = "alias"
        elif n.type == "ram" or n.type == "ramd":
            n.kind = "ram"
            if n.type == "ramd":
                self.warnings.append(f"line {n.lineno}: RAM device {n.name!r} imported as ram")
        elif n.type == "rom":
            n.kind = "rom"
        elif n.type == "romd":
            n.kind = "romd"
        elif n.name in terminal:
            n.kind = "mmio"
        elif n.disabled and not n.children:
            n.kind = "mmio"  # a reservation, such as the SMM blackholes
        else:
            n.kind = "container"

    def _alias_shows_one_byte(self, n: Node) -> bool:
        return any(r.start == n.start == r.end for v in self.dump.views for r in v.ranges)

    def _assign_ids(self, nodes: list[Node]) -> None:
        counts: dict[str, int] = {}
        for n in nodes:
            counts[n.name] = counts.get(n.name, 0) + 1
        used: dict[str, int] = {}
        for n in nodes:
            if counts[n.name] == 1:
                n.id = n.name
                continue
            k = used.get(n.name, 0) + 1
            used[n.name] = k
            n.id = n.name if k == 1 else f"{n.name}#{k}"

    # -- output -------------------------------------------------------------------------------

    def _region(self, n: Node, top: bool) -> dict[str, Any]:
        d: dict[str, Any] = {"name": n.name}
        if n.id != n.name:
            d["id"] = n.id
        d["kind"] = n.kind
        if n.addr:
            d["addr"] = n.addr
        d["size"] = n.size
        if n.prio:
            d["priority"] = n.prio
        if n.disabled:
            d["enabled"] = False
        if n.nv:
            d["nonvolatile"] = True
        if n.readonly:
            d["readonly"] = True
        if n.kind == "alias":
            assert n.target_node is not None
            d["target"] = n.target_node.id
            if n.alias_start:
                d["offset"] = n.alias_start
        if n.kind == "mmio" and n.children:
            d["unassigned"] = "io"
        if n.children:
            d["subregions"] = [self._region(c, False) for c in _add_order(n.children)]
        return d

    def _description(self) -> dict[str, Any]:
        spaces = self._spaces()
        first = {id(r): i for i, (_s, r) in reversed(list(enumerate(spaces)))}
        roots = sorted(self.roots, key=lambda r: first.get(id(r), len(spaces)))
        return {
            "endianness": "little",
            "address_spaces": [{"name": s, "root": r.id} for s, r in spaces],
            "regions": [self._region(r, True) for r in roots],
        }

    def _spaces(self) -> list[tuple[str, Node]]:
        spaces: list[tuple[str, Node]] = []
        root_of: dict[str, Node] = {}
        for names, root in self.dump.groups:
            for name in names:
                root_of.setdefault(name, root)
        order = [s for v in self.dump.views for s, _r in v.spaces]
        for name in order + [n for names, _r in self.dump.groups for n in names]:
            if name in root_of and all(name != s for s, _ in spaces):
                spaces.append((name, root_of[name]))
        return spaces


def _add_order(children: list[Node]) -> list[Node]:
    """The order to add printed children in. The dump sorts them by address, then priority,
    then QEMU's list order, which puts the newest of an exact tie first: reverse each tie."""
    out: list[Node] = []
    i = 0
    while i < len(children):
        j = i
        key = (children[i].addr, children[i].prio)
        while j < len(children) and (children[j].addr, children[j].prio) == key:
            j += 1
        out.extend(reversed(children[i:j]))
        i = j
    return out


def import_dump(text: str) -> tuple[dict[str, Any], list[str]]:
    """Parse a dump and return ``(description as plain data, warnings)``.

    The description is then checked by building it and comparing its flat views with the
    ones in the dump; read-only aliases are found the same way.
    """
    dump = parse_dump(text)
    imp = _Importer(dump)
    desc = imp.run()
    _fix_readonly(imp, desc)
    return desc, imp.warnings


def _fix_readonly(imp: _Importer, desc: dict[str, Any]) -> None:
    # Find ranges QEMU shows as rom although their region's own type is ram, and make the alias
    # closest to the region on the path that maps it read-only.
    from .flatview import FlatView
    from .machine import Machine

    machine = Machine.from_spec(_spec(desc), _here())
    nodes_by_id = {n.id: n for r in imp.roots for n in _walk(r)}
    changed = False
    for view in imp.dump.views:
        for space, _root in view.spaces:
            if space not in machine.spaces:
                continue
            as_ = machine.spaces[space]
            for fr in view.ranges:
                if fr.type != "rom":
                    continue
                ours: FlatView = as_.current_map
                mine = ours.lookup(fr.start)
                if mine is None or mine.readonly or mine.mr.readonly:
                    continue
                chain = _resolve_chain(as_.root, fr.start)
                for mr in reversed(chain[:-1]):
                    if mr.alias is not None or mr is chain[0]:
                        node = nodes_by_id.get(machine.region_id(mr))
                        if node is not None and not node.readonly:
                            node.readonly = True
                            changed = True
                        break
            break
    if changed:
        desc.update(imp._description())


def _resolve_chain(root: Any, addr: int) -> list[Any]:
    """The regions a byte at ``addr`` passes through, root first (a plain tree walk)."""

    def walk(mr: Any, a: int) -> list[Any] | None:
        if not mr.enabled or not 0 <= a < mr.size:
            return None
        if mr.alias is not None:  # the target's own addr does not matter here
            rest = walk(mr.alias, a + mr.alias_offset)
            return [mr, *rest] if rest else None
        for sub in mr.subregions:
            got = walk(sub, a - sub.addr)
            if got:
                return [mr, *got]
        return [mr] if mr.terminates else None

    return walk(root, addr - root.addr) or []


def _spec(desc: dict[str, Any]) -> Any:
    from .description import validate

    return validate(desc)


def _here() -> Any:
    from pathlib import Path

    return Path(".")


# -- YAML output -----------------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
_HEX_KEYS = {"addr", "size", "offset"}


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if key in _HEX_KEYS and value:
            return hex(value)
        return str(value)
    s = str(value)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flow(d: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(k, v)}" for k, v in d.items()) + "}"


def _emit_region(d: dict[str, Any], indent: str, out: list[str]) -> None:
    subs = d.get("subregions")
    if not subs:
        out.append(f"{indent}- {_flow({k: v for k, v in d.items() if k != 'subregions'})}")
        return
    first = True
    for k, v in d.items():
        if k == "subregions":
            continue
        out.append(f"{indent}{'- ' if first else '  '}{k}: {_scalar(k, v)}")
        first = False
    out.append(f"{indent}  subregions:")
    for s in subs:
        _emit_region(s, indent + "    ", out)


def to_yaml(desc: dict[str, Any], header: str = "") -> str:
    """Readable YAML for a description: containers in block style, leaves on one line."""
    out: list[str] = []
    if header:
        out.extend(f"# {line}" if line else "#" for line in header.splitlines())
    out.append(f"endianness: {desc.get('endianness', 'little')}")
    out.append("address_spaces:")
    for s in desc["address_spaces"]:
        out.append(f"  - {_flow(s)}")
    if not desc["address_spaces"]:
        out[-1] += " []"
    out.append("regions:")
    for r in desc["regions"]:
        _emit_region(r, "  ", out)
    if not desc["regions"]:
        out[-1] += " []"
    return "\n".join(out) + "\n"
