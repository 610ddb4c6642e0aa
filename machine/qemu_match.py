"""Which printed regions are one region: the roots of address spaces printed inside other
address spaces' trees, and the ``memory-region:`` sections (alias targets) that repeat a region
printed elsewhere, matched by name, place and shape, so that each region is described once.
"""

from __future__ import annotations

from mmiobus.memory.access import MASK64

from .qemu_dump import Dump, Node, QemuDumpError


def place(node: Node, base: int) -> None:
    """Set ``addr`` (the offset in the parent) of ``node`` and everything below it."""
    node.addr = (node.start - base) & MASK64
    for c in node.children:
        place(c, node.start)


def _fits(alias: Node, target: Node) -> bool:
    return alias.alias_start + ((alias.end - alias.start) & MASK64) < target.size or (
        target.start == 0 and target.end == MASK64
    )


def match_group_roots(dump: Dump) -> list[Node]:
    """An address space may be rooted at a region that sits inside another address space's
    tree (both print it); such a root is that nested region, not a second copy. Rewrites
    ``dump.groups`` accordingly; returns the roots of the trees that remain, in printed order."""
    roots: list[Node] = []
    nested: list[tuple[Node, Node]] = []  # (node, the group root it is printed under)
    for _names, root in dump.groups:
        nested.extend((n, root) for n in list(root.walk())[1:])
    taken: set[int] = set()
    canon: dict[int, Node] = {}
    for i, (names, root) in enumerate(dump.groups):
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
            dump.groups[i] = (names, match)
            for copy, same in zip(root.walk(), match.walk(), strict=True):
                canon[id(copy)] = same
    # A root matched inside a tree that was itself a copy: follow to the region kept.
    for i, (names, root) in enumerate(dump.groups):
        while id(root) in canon and canon[id(root)] is not root:
            root = canon[id(root)]
        dump.groups[i] = (names, root)
    for _names, root in dump.groups:
        if root.parent is None and all(root is not r for r in roots):
            roots.append(root)
    return roots


def match_sections(dump: Dump, roots: list[Node]) -> None:
    """Each ``memory-region:`` section is an alias target: the region printed elsewhere with
    the same name, place and shape, or else a region mapped nowhere (a new root). Then point
    every alias at one of the sections named like its target (``target_node``). Sections
    that match nothing are appended to ``roots``."""
    tree_nodes = [n for r in roots for n in r.walk()]
    matched: set[int] = set()
    sections: dict[str, list[Node]] = {}
    for name, root in dump.sections:
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
            roots.append(root)
            tree_nodes.extend(root.walk())
            match = root
        matched.add(id(match))
        sections.setdefault(name, []).append(match)
    # Aliases in the order QEMU met them while printing (which is the order it queued their
    # targets). When several sections share a name, aliases sharing a name are taken to
    # share a target, and each new alias name takes the next section.
    order: list[Node] = []
    seen: set[int] = set()
    queue = list(roots)
    for root in queue:
        for n in root.walk():
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
            raise QemuDumpError(
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
