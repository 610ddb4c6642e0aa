"""Memory listeners: be told which flat ranges appear and disappear when the topology changes.

Semantics are QEMU's (``memory_listener_register`` and ``address_space_update_topology_pass``):
registering replays the current view as ``region_add`` calls between ``begin``/``commit``;
every commit that changed the topology calls ``begin`` on all listeners, then for each address
space (in creation order) all ``region_del`` calls for ranges that went away (listeners in
reverse priority order), then ``region_nop``/``region_add`` in address order (forward), then
``commit`` on all listeners. A changed range is a ``region_del`` of the old plus a
``region_add`` of the new one, never a modification.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from .flatview import FlatRange

if TYPE_CHECKING:
    from .addrspace import AddressSpace
    from .region import MemoryRegion

log = structlog.get_logger("mmiobus.listener")


@dataclass(frozen=True, slots=True)
class MemoryRegionSection:
    """One flat range as listeners see it (QEMU's ``MemoryRegionSection``)."""

    address_space: AddressSpace
    mr: MemoryRegion
    offset_within_address_space: int
    size: int
    offset_within_region: int
    readonly: bool
    nonvolatile: bool
    unmergeable: bool

    @classmethod
    def of(cls, address_space: AddressSpace, fr: FlatRange) -> MemoryRegionSection:
        """The section listeners of ``address_space`` are shown for ``fr`` (LISTENER-8)."""
        return cls(
            address_space,
            fr.mr,
            fr.start,
            fr.end - fr.start,
            fr.offset,
            fr.readonly,
            fr.nonvolatile,
            fr.unmergeable,
        )


class MemoryListener:
    """Subclass and override what you need; ``priority`` orders listeners (ascending)."""

    priority: int = 0

    def begin(self) -> None:
        """A topology change starts (called on every listener of every address space)."""

    def commit(self) -> None:
        """The topology change is complete; the new flat views are in place."""

    def region_add(self, section: MemoryRegionSection) -> None:
        """``section`` appeared in the listener's address space."""

    def region_del(self, section: MemoryRegionSection) -> None:
        """``section`` disappeared from the listener's address space."""

    def region_nop(self, section: MemoryRegionSection) -> None:
        """``section`` is unchanged by this commit."""


def notify(listeners: Iterable[MemoryListener], method: str, *args: Any) -> None:
    """Call ``method`` on every listener; one that raises is logged and stops no other."""
    for listener in listeners:
        try:
            getattr(listener, method)(*args)
        except Exception:
            log.exception("memory listener failed", listener=repr(listener), callback=method)


def topology_diff(address_space: AddressSpace, old: list[FlatRange], new: list[FlatRange]) -> None:
    """Tell ``address_space``'s listeners how ``old`` became ``new`` (two QEMU passes)."""
    forward = address_space.listeners
    reverse = forward[::-1]
    for adding in (False, True):
        i = j = 0
        while i < len(old) or j < len(new):
            fo = old[i] if i < len(old) else None
            fn = new[j] if j < len(new) else None
            if fo is not None and (
                fn is None or fo.start < fn.start or (fo.start == fn.start and fo.key() != fn.key())
            ):
                if not adding:
                    section = MemoryRegionSection.of(address_space, fo)
                    notify(reverse, "region_del", section)
                i += 1
            elif fo is not None and fn is not None and fo.key() == fn.key():
                if adding:
                    section = MemoryRegionSection.of(address_space, fn)
                    notify(forward, "region_nop", section)
                i += 1
                j += 1
            else:
                assert fn is not None
                if adding:
                    section = MemoryRegionSection.of(address_space, fn)
                    notify(forward, "region_add", section)
                j += 1
