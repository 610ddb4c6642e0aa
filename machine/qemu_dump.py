"""Reading QEMU's ``info mtree -D`` and ``info mtree -f`` text: the region trees (address
spaces and ``memory-region:`` sections) and the flat views, as printed, with no interpretation.

``mmiobus.machine.qemu_import`` turns what is read here into a machine description.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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


class QemuDumpError(ValueError):
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
        """Whether the line was an alias (``alias NAME @TARGET ...``)."""
        return self.target is not None

    def walk(self) -> Iterator[Node]:
        """This node and every node below it, in printed order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def shape(self) -> tuple[Any, ...]:
        """What two printings of one region have in common (everything but the line)."""
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
    """One range of a flat view, as printed."""

    start: int
    end: int
    prio: int
    type: str
    nv: bool
    name: str
    offset: int


@dataclass
class FlatViewBlock:
    """One ``FlatView #N`` block: the address spaces that share it, its root and ranges."""

    spaces: list[tuple[str, str]]  # (address space, root name)
    root: str
    ranges: list[FlatRangeLine]


@dataclass
class Dump:
    """A whole dump: address-space trees, ``memory-region:`` sections and flat views."""

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
            _read_view_line(view, line)
            continue
        m = TREE_LINE.match(line)
        if not m:
            raise QemuDumpError(f"line {lineno}: not a line of `info mtree` output: {line!r}")
        node = _tree_node(m, lineno)
        level = node.level
        while stack and stack[-1].level >= level:
            stack.pop()
        if stack:
            if level != stack[-1].level + 1:
                raise QemuDumpError(f"line {lineno}: indentation skips a level")
            node.parent = stack[-1]
            stack[-1].children.append(node)
        elif level != 1:
            # A child of a disabled region printed without -D: its parent line is missing.
            raise QemuDumpError(
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
            raise QemuDumpError(f"line {lineno}: region line outside an address-space section")
        stack.append(node)
    if not groups and not sections:
        raise QemuDumpError("no `info mtree` tree found (address-space: ... sections)")
    return Dump(groups, sections, views)


def _read_view_line(view: FlatViewBlock, line: str) -> None:
    """Add what one line inside a ``FlatView #N`` block says to ``view``."""
    m = FV_AS.match(line)
    if m:
        view.spaces.append((m.group("as"), m.group("root")))
        return
    m = FV_ROOT.match(line)
    if m:
        view.root = m.group("root")
        return
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
    # Anything else ("No rendered FlatView", dispatch-tree dumps of -d) says nothing we use.


def _tree_node(m: re.Match[str], lineno: int) -> Node:
    """The node of one matched tree line, not yet linked to its parent."""
    level = len(m.group("indent")) // 2
    return Node(
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
