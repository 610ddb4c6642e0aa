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

from mmiobus.memory.access import MASK64, TWO64

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
    r"(?P<rest>.*)$"
)
# After the name: " @OFFSET" (16 hex digits) when the offset is not 0, then with -o an owner,
# then the accelerator's name when it maps the range (" KVM"). Names may contain " @".
_ACCEL_SUFFIX = re.compile(r" (?:KVM|HVF|WHPX|NVMM|HAX|kvm|hvf|whpx|nvmm|hax)$")
_OWNER_SUFFIX = re.compile(r"( orphan| owner:\{.*| parent:\{.*)$")
_OFFSET_SUFFIX = re.compile(r" @(?P<off>[0-9a-f]{16})$")


def split_range_name(rest: str) -> tuple[str, int]:
    """The region name and offset of a flat-view line's tail."""
    rest = _ACCEL_SUFFIX.sub("", rest)
    rest = _OWNER_SUFFIX.sub("", rest)
    m = _OFFSET_SUFFIX.search(rest)
    if m:
        return rest[: m.start()], int(m.group("off"), 16)
    return rest, 0


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
                name, offset = split_range_name(m.group("rest"))
                view.ranges.append(
                    FlatRangeLine(
                        int(m.group("start"), 16),
                        int(m.group("end"), 16),
                        int(m.group("prio")),
                        m.group("type"),
                        bool(m.group("nv")),
                        name,
                        offset,
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


_KNOWN_KINDS = {"ram": "ram", "ramd": "ram", "rom": "rom", "romd": "romd", "container": "container"}


def _fits(alias: Node, target: Node) -> bool:
    return alias.alias_start + ((alias.end - alias.start) & MASK64) < target.size or (
        target.start == 0 and target.end == MASK64
    )


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
        self.nodes: list[Node] = []
        # Evidence gathered by walking the trees where QEMU's flat views say something is.
        self.terminates: set[int] = set()  # id(node): some flat range is this region's
        self.hollow: set[int] = set()  # id(node): some address it covers shows nothing
        self.one_byte: set[int] = set()  # id(node) printed start-start and shown 1 byte wide
        self.view_roots: list[tuple[FlatViewBlock, Node]] = []

    def run(self) -> dict[str, Any]:
        dump = self.dump
        for _names, root in dump.groups:
            _place(root, 0)
        for _name, root in dump.sections:
            _place(root, 0)
        self._match_group_roots()
        self._match_sections()
        self.nodes = [n for r in self.roots for n in _walk(r)]
        for n in self.nodes:
            n.size = ((n.end - n.start) & MASK64) + 1
            n.kind = _KNOWN_KINDS.get(n.type, "") if not n.is_alias else "alias"
            if n.type == "ramd":
                self.warnings.append(f"line {n.lineno}: RAM device {n.name!r} imported as ram")
        self._gather_evidence()
        for n in self.nodes:
            self._classify(n)
        self._assign_ids()
        return self._description()

    # -- structure ----------------------------------------------------------------------------

    def _match_group_roots(self) -> None:
        """An address space may be rooted at a region that sits inside another address space's
        tree (both print it); such a root is that nested region, not a second copy."""
        nested: list[tuple[Node, Node]] = []  # (node, the group root it is printed under)
        for _names, root in self.dump.groups:
            nested.extend((n, root) for n in _walk(root)[1:])
        taken: set[int] = set()
        canon: dict[int, Node] = {}
        for i, (names, root) in enumerate(self.dump.groups):
            shape = root.shape()
            match = next(
                (
                    n
                    for n, under in nested
                    if under is not root
                    and id(n) not in taken
                    and n.name == root.name
                    and n.shape() == shape
                ),
                None,
            )
            if match is not None:
                taken.add(id(match))
                self.dump.groups[i] = (names, match)
                for copy, same in zip(_walk(root), _walk(match), strict=True):
                    canon[id(copy)] = same
        # A root matched inside a tree that was itself a copy: follow to the region kept.
        for i, (names, root) in enumerate(self.dump.groups):
            while id(root) in canon and canon[id(root)] is not root:
                root = canon[id(root)]
            self.dump.groups[i] = (names, root)
        for _names, root in self.dump.groups:
            if root.parent is None and all(root is not r for r in self.roots):
                self.roots.append(root)

    def _match_sections(self) -> None:
        """Each ``memory-region:`` section is an alias target: the region printed elsewhere with
        the same name, place and shape, or else a region mapped nowhere (a new root). Then point
        every alias at one of the sections named like its target."""
        tree_nodes = [n for r in self.roots for n in _walk(r)]
        matched: set[int] = set()
        sections: dict[str, list[Node]] = {}
        for name, root in self.dump.sections:
            shape = root.shape()
            match = next(
                (
                    n
                    for n in tree_nodes
                    if id(n) not in matched and n.name == name and n.shape() == shape
                ),
                None,
            )
            if match is None:
                self.roots.append(root)
                tree_nodes.extend(_walk(root))
                match = root
            matched.add(id(match))
            sections.setdefault(name, []).append(match)
        # Aliases in the order QEMU met them while printing (which is the order it queued their
        # targets). When several sections share a name, aliases sharing a name are taken to
        # share a target, and each new alias name takes the next section.
        order: list[Node] = []
        seen: set[int] = set()
        queue = list(self.roots)
        for root in queue:
            for n in _walk(root):
                if id(n) not in seen:
                    seen.add(id(n))
                    order.append(n)
        taken: dict[str, int] = {}
        by_alias_name: dict[tuple[str, str], Node] = {}
        for n in order:
            if not n.is_alias:
                continue
            candidates = sections.get(n.target or "")
            if not candidates:
                raise ImportError_(
                    f"line {n.lineno}: alias {n.name!r} targets {n.target!r}, which has no "
                    "`memory-region:` section in the dump"
                )
            key = (n.name, n.target or "")
            if len(candidates) == 1:
                n.target_node = candidates[0]
            elif (key in by_alias_name and taken.get(n.target or "", 0) >= len(candidates)) or (
                key in by_alias_name and _fits(n, by_alias_name[key])
            ):
                n.target_node = by_alias_name[key]
            else:
                k = taken.get(n.target or "", 0)
                n.target_node = candidates[min(k, len(candidates) - 1)]
                taken[n.target or ""] = k + 1
            by_alias_name.setdefault(key, n.target_node)

    # -- evidence from the flat views ---------------------------------------------------------

    def _gather_evidence(self) -> None:
        roots_by_as: dict[tuple[str, str], Node] = {}
        for names, root in self.dump.groups:
            for name in names:
                roots_by_as.setdefault((name, root.name), root)
        for view in self.dump.views:
            root = None
            for space in view.spaces:
                root = roots_by_as.get(space)
                if root is not None:
                    break
            if root is None:
                continue
            if view.root in ("", "(none)"):
                for space in view.spaces:
                    if space in roots_by_as:
                        self._mark_empty_root(roots_by_as[space])
                continue
            fv_root = self._flatview_root(root, view.root)
            if fv_root is None:
                continue
            self.view_roots.append((view, fv_root))
            pos = 0
            for fr in view.ranges:
                if fr.start > pos:
                    self._mark_hollow(fv_root, pos, fr.start)
                self._explain(fv_root, fr)
                pos = fr.end + 1
            if pos < TWO64:
                self._mark_hollow(fv_root, pos, TWO64)

    def _mark_empty_root(self, root: Node) -> None:
        """QEMU found nothing to render from ``root``: the regions its flat-view root walk goes
        through are containers (an I/O region there would have been rendered)."""
        node: Node | None = root
        for _ in range(64):
            if node is None or node.disabled:
                return
            if node.is_alias:
                node = node.target_node
                continue
            if not node.kind:
                self.hollow.add(id(node))
            enabled = [c for c in node.children if not c.disabled]
            node = enabled[0] if len(enabled) == 1 else None

    def _flatview_root(self, root: Node, name: str) -> Node | None:
        # QEMU renders from below the AS root through full aliases and lone children at 0.
        node: Node | None = root
        for _ in range(64):
            if node is None or node.name == name:
                return node
            if node.is_alias:
                node = node.target_node
                continue
            enabled = [c for c in node.children if not c.disabled]
            node = enabled[0] if len(enabled) == 1 else None
        return None

    def _covering(self, node: Node, base: int, lo: int, hi: int, path: tuple[Any, ...]) -> Any:
        """Yield (node, base, aliases passed) for every region that may fill part of [lo, hi),
        in QEMU's render order: subregions first (highest priority first), then the region."""
        if node.disabled:
            return
        end = base + (node.size if node.start != node.end else 1)
        lo, hi = max(lo, base), min(hi, end)
        if lo >= hi:
            return
        if node.is_alias:
            target = node.target_node
            assert target is not None
            key = (id(node), base)
            if key in path or len(path) > 64:
                return
            yield from self._covering(target, base - node.alias_start, lo, hi, (*path, key))
            return
        for child in sorted(node.children, key=lambda c: -c.prio):
            yield from self._covering(child, base + child.addr, lo, hi, path)
        yield node, base, path

    def _explain(self, fv_root: Node, fr: FlatRangeLine) -> None:
        """Find the region that supplies flat range ``fr``: the first candidate at its start that
        has its name and offset. I/O regions met before it must be containers there."""
        a = fr.start
        passed: list[Node] = []
        for node, base, _path in self._covering(fv_root, fv_root.addr, a, a + 1, ()):
            if node.kind == "container":
                continue
            offset = a - base
            if node.name == fr.name and offset == fr.offset:
                self.terminates.add(id(node))
                if node.start == node.end and fr.start == fr.end:
                    self.one_byte.add(id(node))
                for p in passed:
                    self.hollow.add(id(p))
                return
            if node.kind:  # RAM, ROM or a ROM device would have filled this byte
                return
            passed.append(node)

    def _mark_hollow(self, fv_root: Node, lo: int, hi: int) -> None:
        """Nothing shows in [lo, hi): every I/O region reaching into it is a container."""
        for node, _base, _path in self._covering(fv_root, fv_root.addr, lo, hi, ()):
            if not node.kind:
                self.hollow.add(id(node))

    def _classify(self, n: Node) -> None:
        if n.start == n.end:
            n.size = 1 if id(n) in self.one_byte else 0
        if n.kind:
            return
        if id(n) in self.terminates:
            n.kind = "mmio"
            if id(n) in self.hollow:
                self.warnings.append(
                    f"line {n.lineno}: {n.name!r} both shows and lets through; imported as mmio"
                )
        elif id(n) in self.hollow or n.children:
            n.kind = "container"
        elif n.disabled or not n.children:
            n.kind = "mmio"  # a device (or a reservation, like the SMM blackholes) never seen

    def alias_at(self, fv_root: Node, a: int) -> Node | None:
        """The alias closest to the region that supplies address ``a`` (after classification)."""
        by_id = {id(n): n for n in self.nodes}
        for node, _base, path in self._covering(fv_root, fv_root.addr, a, a + 1, ()):
            if node.kind != "container":
                return by_id.get(path[-1][0]) if path else None
        return None

    def _assign_ids(self) -> None:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.name] = counts.get(n.name, 0) + 1
        used: dict[str, int] = {}
        for n in self.nodes:
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
        counts: dict[str, int] = {}
        address_spaces = []
        for name, root in spaces:
            counts[name] = counts.get(name, 0) + 1
            entry = {"name": name, "root": root.id}
            if counts[name] > 1:
                entry = {"name": name, "id": f"{name}#{counts[name]}", "root": root.id}
            address_spaces.append(entry)
        return {
            "endianness": "little",
            "address_spaces": address_spaces,
            "regions": [self._region(r, True) for r in roots],
        }

    def _spaces(self) -> list[tuple[str, Node]]:
        """(name, root) per address space, in the order the flat-view dump lists them (then any
        the tree lists that the flat dump lacks). Names may repeat in QEMU."""
        trees: list[tuple[str, Node]] = [(n, r) for names, r in self.dump.groups for n in names]
        out: list[tuple[str, Node]] = []
        used = [False] * len(trees)
        for view in self.dump.views:
            for name, root_name in view.spaces:
                for i, (n, r) in enumerate(trees):
                    if not used[i] and n == name and r.name == root_name:
                        used[i] = True
                        out.append((n, r))
                        break
        out.extend(t for i, t in enumerate(trees) if not used[i])
        return out


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
    desc = _fix_readonly(imp, imp.run())
    return desc, imp.warnings


def _fix_readonly(imp: _Importer, desc: dict[str, Any]) -> dict[str, Any]:
    """Where QEMU shows ``rom`` over a range whose region is plain RAM, an alias on the way is
    read-only: build the machine, find our writable ranges inside QEMU's read-only ones, and
    mark the alias that maps each; repeat until nothing changes."""
    from .build import Machine

    for _ in range(16):
        machine = Machine.from_spec(_spec(desc), _here())
        spaces: dict[tuple[str, str], Any] = {}
        for as_ in machine.system.address_spaces:
            spaces.setdefault((as_.name, as_.root.name), as_)
        marked = 0
        for view, fv_root in imp.view_roots:
            as_ = next((spaces[s] for s in view.spaces if s in spaces), None)
            if as_ is None:
                continue
            ours = as_.current_map.ranges
            for qr in view.ranges:
                if qr.type != "rom":
                    continue
                for fr in ours:
                    if fr.end <= qr.start or fr.start > qr.end or fr.readonly or fr.mr.readonly:
                        continue
                    alias = imp.alias_at(fv_root, max(fr.start, qr.start))
                    if alias is not None and not alias.readonly:
                        alias.readonly = True
                        marked += 1
        if not marked:
            break
        desc = imp._description()
    return desc


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
