"""Turn QEMU's ``info mtree -D`` + ``info mtree -f`` text into a machine description.

The tree dump gives every region's name, place, size, priority, type and enabled flag, but it
prints pure containers and I/O regions alike as ``i/o``, does not say which aliases are
read-only, and cannot tell a 0-byte region from a 1-byte one. The flat-view dump settles those:

* an ``i/o`` region that shows up as a range in some flat view terminates (an ``mmio`` region;
  with subregions it is a "background" region, which in QEMU machines serves PCI-style
  unassigned I/O, so it gets ``unassigned: io``); one that never shows up is a container when it
  is enabled or has subregions, and a reservation (``mmio`` with no ops) otherwise;
* the root of the address space named ``I/O`` is QEMU's system I/O region, whose ops are
  ``unassigned_io_ops``: it answers all-ones and OK (``unassigned: io``) whether or not anything
  is mapped in it (on most machines but x86 nothing is);
* a ``start-start`` region is 1 byte when a flat range shows it, else 0 bytes;
* where QEMU prints ``rom`` over a region whose own type is ``ram``, the alias that maps it is
  read-only.

``memory-region:`` sections (alias targets) that repeat a region already printed in an address
space are matched to it by name, place and shape, so each region is described once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmiobus.memory.access import MASK64, TWO64
from mmiobus.memory.addrspace import AddressSpace

from .build import Machine
from .description import validate
from .qemu_dump import (
    Dump,
    FlatRangeLine,
    FlatViewBlock,
    Node,
    QemuDumpError,
    parse_dump,
)
from .qemu_match import match_group_roots, match_sections, place
from .yaml_writer import to_yaml

# ``mmiobus import-qemu`` imports these from here.
__all__ = ["QemuDumpError", "import_dump", "parse_dump", "to_yaml"]

_KNOWN_KINDS = {"ram": "ram", "ramd": "ram", "rom": "rom", "romd": "romd", "container": "container"}
# QEMU names the address space over get_system_io() "I/O" (softmmu/physmem.c).
_SYSTEM_IO_SPACE = "I/O"


class _Importer:
    """One import: the dump's trees, then the evidence its flat views give, then the
    description (``run``)."""

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
        self.system_io: set[int] = set()  # id(node): the root of QEMU's I/O address space

    def run(self) -> dict[str, Any]:
        """The description, as plain data; ``warnings`` holds what was imported approximately."""
        dump = self.dump
        for _names, root in dump.groups:
            place(root, 0)
        for _name, root in dump.sections:
            place(root, 0)
        self.roots = match_group_roots(dump)
        match_sections(dump, self.roots)
        self.system_io = {id(root) for names, root in dump.groups if _SYSTEM_IO_SPACE in names}
        self.nodes = [n for r in self.roots for n in r.walk()]
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

    # -- evidence from the flat views ---------------------------------------------------------

    def _gather_evidence(self) -> None:
        roots_by_as: dict[tuple[str, str], Node] = {}
        for names, group_root in self.dump.groups:
            for name in names:
                roots_by_as.setdefault((name, group_root.name), group_root)
        for view in self.dump.views:
            root = next((roots_by_as[s] for s in view.spaces if s in roots_by_as), None)
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
        if n.kind == "mmio" and (n.children or id(n) in self.system_io):
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
    for _ in range(16):
        machine = Machine.from_spec(validate(desc), Path("."))
        spaces: dict[tuple[str, str], AddressSpace] = {}
        for space in machine.system.address_spaces:
            spaces.setdefault((space.name, space.root.name), space)
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
