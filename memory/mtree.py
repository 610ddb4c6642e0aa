"""QEMU 7.2's ``info mtree [-f] [-D]`` text, line for line.

QEMU prints address-space groups and flat views in glib hash-table order; we print them in the
order the address spaces were created (the order of ``address_spaces`` in a machine file).
Everything else follows QEMU: children sorted by address then priority (not render order),
disabled regions hidden unless ``-D`` (their children still print), ``memory-region:`` sections
for every alias target, and ``[DETECTED OVERFLOW!]`` where the u64 arithmetic wraps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .access import MASK64

if TYPE_CHECKING:
    from .addrspace import AddressSpace
    from .flatview import FlatView
    from .region import MemoryRegion
    from .system import MemorySystem

INDENT = "  "


def mr_size(size: int) -> int:
    """QEMU's ``MR_SIZE``: the offset of the last byte, 0 for an empty region."""
    return (size - 1) & MASK64 if size else 0


def region_type(mr: MemoryRegion) -> str:
    """QEMU 7.2's ``memory_region_type``: an alias shows its target's type; everything that is
    not RAM, ROM or a ROM device in ROMD mode (pure containers included) is ``i/o``."""
    while mr.alias is not None:
        mr = mr.alias
    if mr.rom_device and mr.romd_mode:
        return "romd"
    if mr.ram:
        return "rom" if mr.readonly else "ram"
    return "i/o"


def sorted_children(mr: MemoryRegion) -> list[MemoryRegion]:
    """Children in print order: by address, then priority descending, then QEMU list order."""
    return sorted(mr.subregions, key=lambda c: (c.addr, -c.priority))


def _print_mr(
    out: list[str],
    mr: MemoryRegion,
    level: int,
    base: int,
    alias_queue: dict[MemoryRegion, None],
    show_disabled: bool,
) -> None:
    # ``out`` collects raw text, as QEMU's printf calls do: the overflow marker is printed even
    # when the region's own line is then suppressed, and so lands before the next line.
    start = (base + mr.addr) & MASK64
    end = (start + mr_size(mr.size)) & MASK64
    if start < base or end < start:
        out.append("[DETECTED OVERFLOW!] ")
    nv = "nv-" if mr.nonvolatile else ""
    disabled = "" if mr.enabled else " [disabled]"
    head = f"{INDENT * level}{start:016x}-{end:016x} (prio {mr.priority}, {nv}{region_type(mr)}): "
    if mr.alias is not None:
        if mr.alias not in alias_queue:  # identity: regions do not define __eq__
            alias_queue[mr.alias] = None
        if mr.enabled or show_disabled:
            a_start = mr.alias_offset
            a_end = (a_start + mr_size(mr.size)) & MASK64
            out.append(
                f"{head}alias {mr.name} @{mr.alias.name} {a_start:016x}-{a_end:016x}{disabled}\n"
            )
    elif mr.enabled or show_disabled:
        out.append(f"{head}{mr.name}{disabled}\n")
    for child in sorted_children(mr):
        _print_mr(out, child, level + 1, start, alias_queue, show_disabled)


def _address_space_groups(system: MemorySystem) -> list[tuple[MemoryRegion, list[AddressSpace]]]:
    groups: dict[int, tuple[MemoryRegion, list[AddressSpace]]] = {}
    for as_ in system.address_spaces:
        groups.setdefault(id(as_.root), (as_.root, []))[1].append(as_)
    return list(groups.values())


def mtree_tree(system: MemorySystem, show_disabled: bool = False) -> str:
    """``info mtree`` (``-D`` when ``show_disabled``)."""
    out: list[str] = []
    alias_queue: dict[MemoryRegion, None] = {}  # ordered set
    for root, spaces in _address_space_groups(system):
        for as_ in sorted(spaces, key=lambda a: a.name.encode()):
            out.append(f"address-space: {as_.name}\n")
        _print_mr(out, root, 1, 0, alias_queue, show_disabled)
        out.append("\n")
    printed = 0
    while printed < len(alias_queue):  # the queue grows while we print it
        for target in list(alias_queue)[printed:]:
            out.append(f"memory-region: {target.name}\n")
            _print_mr(out, target, 1, 0, alias_queue, show_disabled)
            out.append("\n")
            printed += 1
    return "".join(out)


def flatview_groups(system: MemorySystem) -> list[tuple[FlatView, list[AddressSpace]]]:
    """Address spaces grouped by the flat view they share, in creation order."""
    groups: dict[int, tuple[FlatView, list[AddressSpace]]] = {}
    for as_ in system.address_spaces:
        view = as_.current_map
        groups.setdefault(id(view), (view, []))[1].append(as_)
    return list(groups.values())


def mtree_flat(system: MemorySystem) -> str:
    """``info mtree -f``."""
    out: list[str] = []
    for n, (view, spaces) in enumerate(flatview_groups(system)):
        out.append(f"FlatView #{n}")
        for as_ in spaces:
            line = f' AS "{as_.name}", root: {as_.root.name}'
            if as_.root.alias is not None:
                line += f", alias {as_.root.alias.name}"
            out.append(line)
        out.append(f" Root memory region: {view.root.name if view.root else '(none)'}")
        if not view.ranges:
            out.append(INDENT + "No rendered FlatView")
            out.append("")
            continue
        for fr in view.ranges:
            mr = fr.mr
            size = fr.end - fr.start
            line = (
                f"{INDENT}{fr.start:016x}-{(fr.start + mr_size(size)) & MASK64:016x} "
                f"(prio {mr.priority}, {'nv-' if fr.nonvolatile else ''}"
                f"{'rom' if fr.readonly else region_type(mr)}): {mr.name}"
            )
            if fr.offset:
                line += f" @{fr.offset:016x}"
            out.append(line)
        out.append("")
    return "".join(line + "\n" for line in out)


def mtree(system: MemorySystem, flat: bool = False, show_disabled: bool = False) -> str:
    """QEMU's ``info mtree`` text for ``system``: flat views with ``flat``, else the trees."""
    return mtree_flat(system) if flat else mtree_tree(system, show_disabled)
