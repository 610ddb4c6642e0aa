"""The memory system: regions, address spaces, transactions and the commit that publishes them.

QEMU keeps this state in globals (the transaction depth, the list of address spaces, the
listeners); here it is one object, so several independent machines can live in one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from .access import Endianness, MemoryRegionOps
from .addrspace import AddressSpace
from .errors import InvalidArgumentError, TransactionError
from .flatview import FlatView, flatview_root, render
from .listener import MemoryListener, notify, topology_diff
from .region import MemoryRegion, RegionKind, Unassigned


class MemorySystem:
    """Owns a machine's address spaces and creates its regions.

    ``endianness`` is the machine's native byte order, used by devices declared ``NATIVE``.
    """

    def __init__(self, endianness: Endianness = Endianness.LITTLE) -> None:
        if endianness is Endianness.NATIVE:
            raise InvalidArgumentError("a machine's endianness is little or big, not native")
        self.endianness = endianness
        self.native_big = endianness is Endianness.BIG
        self.address_spaces: list[AddressSpace] = []
        self._depth = 0
        self._dirty = False
        self._listeners: list[MemoryListener] = []
        self._journals: list[list[Callable[[], None]]] = []
        self._views: dict[int, FlatView] = {}
        self.generation = 0  # bumped by every commit that re-rendered

    # -- region constructors ------------------------------------------------------------------

    def container(self, name: str, size: int) -> MemoryRegion:
        """A pure container: holes stay holes (QEMU's ``memory_region_init``)."""
        return MemoryRegion(self, name, size, RegionKind.CONTAINER)

    def ram(self, name: str, size: int, data: bytes | None = None) -> MemoryRegion:
        """Zero-filled RAM, optionally starting with ``data``."""
        return MemoryRegion(self, name, size, RegionKind.RAM, data=data)

    def rom(self, name: str, size: int, data: bytes | None = None) -> MemoryRegion:
        """ROM: reads like RAM, writes fail with ``MEMTX_DECODE_ERROR`` and change nothing."""
        return MemoryRegion(self, name, size, RegionKind.ROM, data=data)

    def romd(
        self,
        name: str,
        size: int,
        ops: MemoryRegionOps | None = None,
        data: bytes | None = None,
    ) -> MemoryRegion:
        """ROM device: reads from ``data`` in ROMD mode, writes (and other reads) to ``ops``."""
        return MemoryRegion(self, name, size, RegionKind.ROMD, ops=ops, data=data)

    def mmio(
        self,
        name: str,
        size: int,
        ops: MemoryRegionOps | None = None,
        unassigned: Unassigned = Unassigned.MEMORY,
    ) -> MemoryRegion:
        """I/O region served by ``ops``; without ops it answers per ``unassigned``."""
        return MemoryRegion(self, name, size, RegionKind.MMIO, ops=ops, unassigned=unassigned)

    def alias(self, name: str, target: MemoryRegion, offset: int, size: int) -> MemoryRegion:
        """A ``size``-byte window onto ``target`` starting ``offset`` bytes into it."""
        return MemoryRegion(self, name, size, RegionKind.ALIAS, alias=target, alias_offset=offset)

    # -- address spaces -----------------------------------------------------------------------

    def address_space(self, name: str, root: MemoryRegion) -> AddressSpace:
        """Create an address space over ``root``; it is rendered at once, even mid-transaction."""
        if not isinstance(root, MemoryRegion) or root.system is not self:
            raise InvalidArgumentError(f"the root of {name!r} must be a region of this system")
        as_ = AddressSpace(self, name, root)
        as_.current_map = self._view_for(root)
        self.address_spaces.append(as_)
        self._record(lambda: self.address_spaces.remove(as_))
        return as_

    # -- transactions -------------------------------------------------------------------------

    def begin(self) -> None:
        """Open a (possibly nested) transaction: changes become visible at the outermost commit."""
        self._depth += 1

    def commit(self) -> None:
        """Close a transaction; the outermost commit re-renders once and tells the listeners."""
        if self._depth == 0:
            raise TransactionError("commit without a matching begin")
        self._depth -= 1
        if self._depth == 0 and self._dirty:
            self._publish()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``with system.transaction():`` groups changes into one re-render."""
        self.begin()
        try:
            yield
        finally:
            self.commit()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction that is all or nothing: if the block raises, every change made in it
        is undone (in reverse order) before the exception propagates, and no listener sees any
        intermediate state."""
        journal: list[Callable[[], None]] = []
        was_dirty = self._dirty
        views = dict(self._views)
        self.begin()
        self._journals.append(journal)
        try:
            yield
        except BaseException:
            self._journals.pop()
            for undo in reversed(journal):
                undo()
            self._dirty = was_dirty  # the tree is back to what it was
            self._views = views  # forget views rendered from the abandoned tree
            self.commit()
            raise
        self._journals.pop()
        if self._journals:
            self._journals[-1].extend(journal)
        self.commit()

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open: changes made now reach accesses and listeners at
        the outermost commit."""
        return self._depth > 0

    def _record(self, undo: Callable[[], None]) -> None:
        if self._journals:
            self._journals[-1].append(undo)

    def _mark_dirty(self) -> None:
        self._dirty = True

    # -- listeners ----------------------------------------------------------------------------

    def _add_listener(self, listener: MemoryListener) -> None:
        # Ascending priority; a new listener goes after existing ones of equal priority.
        i = len(self._listeners)
        while i > 0 and self._listeners[i - 1].priority > listener.priority:
            i -= 1
        self._listeners.insert(i, listener)

    def _remove_listener(self, listener: MemoryListener) -> None:
        self._listeners.remove(listener)

    # -- rendering ----------------------------------------------------------------------------

    def _view_for(self, root: MemoryRegion) -> FlatView:
        fv_root = flatview_root(root)
        key = id(fv_root)
        view = self._views.get(key)
        if view is None or view.root is not fv_root:
            view = render(fv_root)
            self._views[key] = view
        return view

    def _publish(self) -> None:
        self._dirty = False
        self.generation += 1
        self._views = {}
        new_views = [(as_, self._view_for(as_.root)) for as_ in self.address_spaces]
        notify(self._listeners, "begin")
        for as_, view in new_views:
            old = as_.current_map
            if as_.listeners:
                topology_diff(as_, old.ranges, view.ranges)
            as_.current_map = view
        notify(self._listeners, "commit")
