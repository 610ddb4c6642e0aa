"""What a running QEMU machine looks like from outside: the ranges its CPU's address space maps
(from ``info mtree -f``), and its objects (QOM paths and types, from ``qom-list``), to check
windows and to find the interrupt controller whose inputs are intercepted."""

from __future__ import annotations

import re

from mmiobus.machine.qemu_dump import FV_AS, FV_HEAD, FV_RANGE
from mmiobus.peers.windows import merge

from .qmp import Qmp, QmpError

# Types that look like interrupt controllers: named in the message when a path is unknown.
_CONTROLLER_HINT = re.compile(r"gic|plic|aplic|ioapic|i8259|pic|intc|nvic|imsic", re.I)
_SKIP_TYPES = ("child<irq>", "child<memory-region>", "child<clock>")


class IrqControllerError(ValueError):
    """No single QEMU object answers to the interrupt controller asked for."""


def cpu_flat_view(mtree_f: str) -> list[tuple[int, int]]:
    """The [first, last] ranges (merged) that the first CPU's address space (``cpu-memory-0``,
    else ``memory``) maps, from the text of ``info mtree -f``."""
    views: list[tuple[list[str], list[tuple[int, int]]]] = []
    for line in mtree_f.splitlines():
        if FV_HEAD.match(line):
            views.append(([], []))
        elif views and (m := FV_AS.match(line)):
            views[-1][0].append(m["as"])
        elif views and (m := FV_RANGE.match(line)):
            views[-1][1].append((int(m["start"], 16), int(m["end"], 16)))
    for wanted in ("cpu-memory-0", "memory"):
        for spaces, ranges in views:
            if wanted in spaces:
                return merge(ranges)
    return []


async def mapped_ranges(qmp: Qmp) -> list[tuple[int, int]]:
    """What the machine's CPU address space maps (merged [first, last] ranges)."""
    return cpu_flat_view(await qmp.hmp("info mtree -f"))


async def objects(qmp: Qmp, root: str = "/machine") -> list[tuple[str, str]]:
    """Every object under ``root`` as (QOM path, type), depth first (irqs, memory regions and
    clocks left out)."""
    found: list[tuple[str, str]] = []
    stack = [root]
    while stack:
        path = stack.pop()
        for prop in await qmp.qom_list(path):
            kind = prop.get("type", "")
            if kind.startswith("child<") and kind not in _SKIP_TYPES:
                child = f"{path.rstrip('/')}/{prop['name']}"
                found.append((child, kind[len("child<") : -1]))
                stack.append(child)
    return found


async def find_irq_controller(qmp: Qmp, what: str) -> str:
    """The QOM path of the interrupt controller ``what`` names: a path (``/machine/...``),
    or a QOM type (``arm_gic``, ``riscv.sifive.plic``) of which the machine has exactly one."""
    if what.startswith("/"):
        try:
            await qmp.qom_list(what)
            return what
        except QmpError:
            pass
        found = await objects(qmp)
        raise IrqControllerError(f"QEMU has no object at {what}; {_hint(found)}")
    found = await objects(qmp)
    paths = [p for p, kind in found if kind == what]
    if len(paths) == 1:
        return paths[0]
    if paths:
        raise IrqControllerError(
            f"QEMU has {len(paths)} objects of type {what!r} ({', '.join(paths[:4])}); give "
            "the path of the one to intercept"
        )
    raise IrqControllerError(f"QEMU has no object of type {what!r}; {_hint(found)}")


def _hint(found: list[tuple[str, str]]) -> str:
    controllers = [f"{p} ({kind})" for p, kind in found if _CONTROLLER_HINT.search(kind)]
    if not controllers:
        return "`qom-list` over QMP shows the machine's objects"
    return "interrupt controllers: " + ", ".join(controllers[:6])
