"""Regions devices serve, kept where they are: which topology operations would delete, unmap,
disable, move, resize, lower, or overlay at a higher priority, a region a device serves, or
delete an address space that shows one (``authz.check_topology_op`` asks before each operation
of a transaction, and refuses those to callers without the admin role).

A region *shows* a served region when it is that region, holds it (through any depth of
containers) or is an alias of a region that shows it. Changing such a region changes what the
device serves. Another region *overlays* a served region when, at some level of the tree, it (or
the container it is in, or an alias of that container) comes before a region that shows the
served one, in the precedence order of their container, over the addresses where the served
region shows. The check is conservative: a region placed over a served one counts with its whole
extent, even where it is a transparent container.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mmiobus.machine import Machine
from mmiobus.memory.region import MemoryRegion
from mmiobus.wire import size_from_pb

BUDGET = 20_000
"""Most steps one check may take (a tree of aliases looping through each other has many ways
down); past it the operation is refused as if it touched a served region."""


class _TooComplex(Exception):
    pass


Window = tuple[int, int, MemoryRegion]  # [start, end) in some region's coordinates, served region


class _Scope:
    """The machine as one check sees it, with what it computed so far."""

    def __init__(self, machine: Machine, served: Mapping[MemoryRegion, str]) -> None:
        self.machine = machine
        self.served = served
        self.steps = 0
        self._aliases: dict[MemoryRegion, list[MemoryRegion]] | None = None
        self._shows: set[MemoryRegion] | None = None

    def step(self) -> None:
        self.steps += 1
        if self.steps > BUDGET:
            raise _TooComplex

    def aliases_of(self, mr: MemoryRegion) -> list[MemoryRegion]:
        if self._aliases is None:
            self._aliases = {}
            for a in self.machine.regions.values():
                if a.alias is not None:
                    self._aliases.setdefault(a.alias, []).append(a)
        return self._aliases.get(mr, [])

    @property
    def shows(self) -> set[MemoryRegion]:
        """Every region that shows a served region."""
        if self._shows is None:
            out: set[MemoryRegion] = set()
            todo = list(self.served)
            while todo:
                mr: MemoryRegion | None = todo.pop()
                while mr is not None and mr not in out:
                    self.step()
                    out.add(mr)
                    todo.extend(self.aliases_of(mr))
                    mr = mr.container
            self._shows = out
        return self._shows

    def windows(self, mr: MemoryRegion, depth: int = 0) -> list[Window]:
        """Where ``mr`` shows served regions, in its own coordinates."""
        self.step()
        if mr in self.served:
            return [(0, mr.size, mr)]
        if depth > 64:
            raise _TooComplex
        out: list[Window] = []
        shows = self.shows
        if mr.alias is not None and mr.alias in shows:
            off = mr.alias_offset
            for a, b, s in self.windows(mr.alias, depth + 1):
                lo, hi = max(a - off, 0), min(b - off, mr.size)
                if lo < hi:
                    out.append((lo, hi, s))
        for sub in mr.subregions:
            if sub in shows:
                for a, b, s in self.windows(sub, depth + 1):
                    lo, hi = max(a + sub.addr, 0), min(b + sub.addr, mr.size)
                    if lo < hi:
                        out.append((lo, hi, s))
        return out

    def shown(self, mr: MemoryRegion) -> MemoryRegion | None:
        """A served region ``mr`` shows, or ``None``."""
        if mr not in self.shows:
            return None
        found = self.windows(mr)  # empty: an alias whose window misses what its target shows
        return found[0][2] if found else None

    def overlaid(
        self, parent: MemoryRegion, child: MemoryRegion, lo: int, hi: int, priority: int
    ) -> MemoryRegion | None:
        """The served region ``child``, placed at ``[lo, hi)`` of ``parent`` with ``priority``
        (newest among equals), would overlay, or ``None``."""
        stack: list[tuple[MemoryRegion, MemoryRegion, int, int, bool]] = [
            (parent, child, lo, hi, True)
        ]
        shows = self.shows
        while stack:
            self.step()
            c, n, lo, hi, placed = stack.pop()
            subs = c.subregions  # precedence: highest first
            if placed:
                below = [s for s in subs if s is not n and s.priority <= priority]
            else:
                at = next((i for i, s in enumerate(subs) if s is n), len(subs))
                below = subs[at + 1 :]
            for s in below:
                if s in shows:
                    for a, b, served in self.windows(s):
                        if a + s.addr < hi and lo < b + s.addr:
                            return served
            lo, hi = max(lo, 0), min(hi, c.size)
            if lo >= hi:
                continue
            if c.container is not None:
                stack.append((c.container, c, lo + c.addr, hi + c.addr, False))
            for alias in self.aliases_of(c):
                off = alias.alias_offset
                alo, ahi = max(lo - off, 0), min(hi - off, alias.size)
                if alo < ahi and alias.container is not None:
                    stack.append(
                        (alias.container, alias, alo + alias.addr, ahi + alias.addr, False)
                    )
        return None


def protected_change(machine: Machine, served: Mapping[MemoryRegion, str], op: Any) -> str | None:
    """What ``op`` (a ``TopologyOp``) would do to a region a device serves, in words
    (``"deleting region 'uart0', which device 'uart0' serves"``), or ``None``."""
    kind = op.WhichOneof("op")
    check = _CHECKS.get(kind or "")
    if check is None:
        return None
    scope = _Scope(machine, served)
    try:
        return check(scope, getattr(op, kind))
    except _TooComplex:
        return (
            f"{kind} could not be checked against the regions devices serve within {BUDGET} steps"
        )


def _what(scope: _Scope, mr: MemoryRegion, region_id: str, doing: str) -> str | None:
    """``doing region X, which device D serves`` when ``mr`` shows a served region."""
    served = scope.shown(mr)
    if served is None:
        return None
    device = scope.served.get(served, "?")
    if served is mr:
        return f"{doing} region {region_id!r}, which device {device!r} serves"
    return (
        f"{doing} region {region_id!r}, which shows region "
        f"{scope.machine.region_id(served)!r} that device {device!r} serves"
    )


def _over(
    scope: _Scope, mr: MemoryRegion, region_id: str, addr: int, size: int, priority: int
) -> str | None:
    if mr.container is None:
        return None
    return _overlay_message(scope, mr.container, mr, region_id, addr, size, priority)


def _overlay_message(
    scope: _Scope,
    parent: MemoryRegion,
    mr: MemoryRegion,
    region_id: str,
    addr: int,
    size: int,
    priority: int,
) -> str | None:
    served = scope.overlaid(parent, mr, addr, addr + size, priority)
    if served is None:
        return None
    return (
        f"region {region_id!r} at {addr:#x} with priority {priority} would overlay region "
        f"{scope.machine.region_id(served)!r}, which device {scope.served.get(served, '?')!r} "
        "serves"
    )


def _region(scope: _Scope, region_id: str) -> MemoryRegion | None:
    return scope.machine.regions.get(region_id)  # unknown: the operation fails by itself


def _delete(scope: _Scope, o: Any) -> str | None:
    mr = _region(scope, o.id)
    return None if mr is None else _what(scope, mr, o.id, "deleting")


def _unmap(scope: _Scope, o: Any) -> str | None:
    mr = _region(scope, o.child)
    return None if mr is None else _what(scope, mr, o.child, "unmapping")


def _enabled(scope: _Scope, o: Any) -> str | None:
    mr = _region(scope, o.id)
    if mr is None:
        return None
    if not o.enabled:
        return _what(scope, mr, o.id, "disabling")
    if mr.enabled:
        return None
    return _over(scope, mr, o.id, mr.addr, mr.size, mr.priority)


def _size(scope: _Scope, o: Any) -> str | None:
    mr = _region(scope, o.id)
    if mr is None:
        return None
    return _what(scope, mr, o.id, "resizing") or _over(
        scope, mr, o.id, mr.addr, size_from_pb(o.size), mr.priority
    )


def _address(scope: _Scope, o: Any) -> str | None:
    mr = _region(scope, o.id)
    if mr is None:
        return None
    return _what(scope, mr, o.id, "moving") or _over(scope, mr, o.id, o.addr, mr.size, mr.priority)


def _priority(scope: _Scope, o: Any) -> str | None:
    mr = _region(scope, o.id)
    if mr is None:
        return None
    lowered = (
        _what(scope, mr, o.id, "lowering the priority of") if o.priority < mr.priority else None
    )
    return lowered or _over(scope, mr, o.id, mr.addr, mr.size, o.priority)


def _alias_offset(scope: _Scope, o: Any) -> str | None:
    mr = _region(scope, o.id)
    if mr is None:
        return None
    return _what(scope, mr, o.id, "sliding") or _over(
        scope, mr, o.id, mr.addr, mr.size, mr.priority
    )


def _add(scope: _Scope, o: Any) -> str | None:
    parent, child = _region(scope, o.parent), _region(scope, o.child)
    if parent is None or child is None:
        return None
    return _overlay_message(scope, parent, child, o.child, o.addr, child.size, o.priority)


def _delete_space(scope: _Scope, o: Any) -> str | None:
    space = scope.machine.spaces.get(o.id)
    served = scope.shown(space.root) if space is not None else None
    if served is None:
        return None
    return (
        f"deleting address space {o.id!r}, which shows region "
        f"{scope.machine.region_id(served)!r} that device {scope.served.get(served, '?')!r} serves"
    )


_CHECKS: dict[str, Callable[[_Scope, Any], str | None]] = {
    "delete_region": _delete,
    "remove_subregion": _unmap,
    "set_enabled": _enabled,
    "set_size": _size,
    "set_address": _address,
    "set_priority": _priority,
    "set_alias_offset": _alias_offset,
    "add_subregion": _add,
    "delete_address_space": _delete_space,
}
"""The operations that can hide a served region; creating regions and address spaces cannot."""
