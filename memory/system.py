"""The memory system: regions, address spaces, transactions and the commit that publishes them.

QEMU keeps this state in globals (the transaction depth, the list of address spaces, the
listeners); here it is one object, so several independent machines can live in one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from .access import Endianness, MemoryRegionOps
from .addrspace import AddressSpace
from .backing import settle_mapping
from .errors import InvalidArgumentError, RenderWorkError, TransactionError
from .flatview import MAX_ALIAS_WORK, FlatView, RenderBudget, flatview_root, render
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
        # Views by id() of their flat-view root, each with the change stamp it was rendered at:
        # one is reused only while nothing changed since (``_stamp`` counts changes).
        self._views: dict[int, tuple[int, FlatView]] = {}
        self._stamp = 0
        self._budget: RenderBudget | None = None  # shared by the renders of one transaction
        self._removed: list[AddressSpace] = []  # address spaces that go at the next publish
        # Regions whose mapping was resized in place, with the lowest size each had since:
        # their bytes from there on are zeroed at the outermost commit (set_size).
        self._resized: dict[MemoryRegion, int] = {}
        self.generation = 0  # bumped by every commit that re-rendered
        # Whether the views accesses use now took more render work than a commit may
        # (RENDER-14): then atomic() does not refuse a transaction for being over it too.
        self.over_budget = False

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
        """Create an address space over ``root``; it is rendered at once, even mid-transaction
        (TXN-6), with the transaction's render budget when one is open."""
        if not isinstance(root, MemoryRegion) or root.system is not self:
            raise InvalidArgumentError(f"the root of {name!r} must be a region of this system")
        as_ = AddressSpace(self, name, root)
        budget = self._budget or RenderBudget()
        as_.current_map = self._view_for(root, budget)
        if self._budget is None and budget.over:
            self.over_budget = True
        self.address_spaces.append(as_)
        self._record(lambda: self.address_spaces.remove(as_))
        return as_

    def remove_address_space(self, as_: AddressSpace) -> None:
        """Destroy an address space (QEMU's ``address_space_destroy``), as a change of the
        topology: at the outermost commit it leaves ``address_spaces``, and its listeners are
        told that every range went away (``region_del`` between ``begin`` and ``commit``, as
        for any publish) and are unregistered. Accesses made through a reference kept
        elsewhere go on seeing its last view. Rolled back with the rest of an ``atomic()``
        block. ``InvalidArgumentError`` if ``as_`` is not an address space of this system."""
        if as_ not in self.address_spaces:
            raise InvalidArgumentError(f"{as_!r} is not an address space of this system")
        with self.transaction():
            index = self.address_spaces.index(as_)
            del self.address_spaces[index]
            self._removed.append(as_)
            self._mark_dirty()

            def undo() -> None:
                self._removed.remove(as_)
                self.address_spaces.insert(index, as_)
                self._mark_dirty()

            self._record(undo)

    # -- transactions -------------------------------------------------------------------------

    def begin(self) -> None:
        """Open a (possibly nested) transaction: changes become visible at the outermost commit.
        The renders of one outermost transaction share one budget (RENDER-14)."""
        if self._depth == 0:
            self._budget = RenderBudget()
        self._depth += 1

    def commit(self) -> None:
        """Close a transaction; the outermost commit re-renders once and tells the listeners."""
        if self._depth == 0:
            raise TransactionError("commit without a matching begin")
        self._depth -= 1
        if self._depth == 0:
            try:
                if self._dirty:
                    self._publish()
            finally:
                self._budget = None
                self._settle_resized()

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
        intermediate state.

        The outermost ``atomic()`` also renders the new views before it commits, and refuses
        (``RenderWorkError``, everything undone) a transaction whose renders would take more
        work than a commit may (RENDER-14), unless the views in use took that much already."""
        journal: list[Callable[[], None]] = []
        was_dirty = self._dirty
        views = dict(self._views)
        stamp = self._stamp
        self.begin()
        self._journals.append(journal)
        try:
            yield
            if self._depth == 1:  # the outermost: what it would publish must be affordable
                if self._dirty:
                    self._check_render_work()
                else:  # nothing to re-render, but new address spaces rendered already
                    self.check_render_work()
        except BaseException:
            self._journals.pop()
            for undo in reversed(journal):
                undo()
            self._dirty = was_dirty  # the tree is back to what it was
            self._views, self._stamp = views, stamp  # forget views of the abandoned tree
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

    def _note_resized(self, mr: MemoryRegion, low: int) -> None:
        """``mr``'s mapping was resized in place and its bytes from ``low`` on must read zero
        once the outermost transaction commits (undone with the rest of an ``atomic()``)."""
        previous = self._resized.get(mr)
        self._resized[mr] = low if previous is None else min(previous, low)

        def undo() -> None:
            if previous is None:
                self._resized.pop(mr, None)
            else:
                self._resized[mr] = previous

        self._record(undo)

    def _settle_resized(self) -> None:
        resized, self._resized = self._resized, {}
        for mr, low in resized.items():
            if mr.backing is not None:
                settle_mapping(mr.backing, low, mr.size)

    def _mark_dirty(self) -> None:
        self._dirty = True
        self._stamp += 1

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

    def _view_for(self, root: MemoryRegion, budget: RenderBudget) -> FlatView:
        fv_root = flatview_root(root)
        key = id(fv_root)
        cached = self._views.get(key)
        if cached is not None and cached[0] == self._stamp and cached[1].root is fv_root:
            return cached[1]
        view = render(fv_root, budget)
        self._views[key] = (self._stamp, view)
        return view

    def check_render_work(self) -> None:
        """Inside a transaction: raise ``RenderWorkError`` now if its renders so far (new
        address spaces render at once, TXN-6) already took more work than a commit may
        (RENDER-14), unless the views in use did too; ``atomic()`` would refuse it anyway, so a
        long transaction can stop early. Outside a transaction, nothing."""
        budget = self._budget
        if budget is not None and budget.over and not self.over_budget:
            raise _render_work_error(budget)

    def _check_render_work(self) -> None:
        """Render what the outermost commit will publish (it then reuses these views) and
        refuse it if that took more work than a commit may."""
        budget = self._budget
        assert budget is not None  # inside a transaction
        for as_ in self.address_spaces:
            self._view_for(as_.root, budget)
        self.check_render_work()

    def _publish(self) -> None:
        budget = self._budget or RenderBudget()
        self._dirty = False
        self.generation += 1
        new_views = [(as_, self._view_for(as_.root, budget)) for as_ in self.address_spaces]
        removed, self._removed = self._removed, []
        self.over_budget = budget.over
        # Keep only the views in use: the others were rendered from trees that are gone.
        self._views = {id(view.root): (self._stamp, view) for _as, view in new_views}
        notify(self._listeners, "begin")
        for as_ in removed:
            if as_.listeners:
                topology_diff(as_, as_.current_map.ranges, [])
        for as_, view in new_views:
            old = as_.current_map
            if as_.listeners:
                topology_diff(as_, old.ranges, view.ranges)
            as_.current_map = view
        notify(self._listeners, "commit")
        for as_ in removed:
            for listener in list(as_.listeners):
                as_.listeners.remove(listener)
                self._remove_listener(listener)


def _render_work_error(budget: RenderBudget) -> RenderWorkError:
    if budget.exhausted:
        message = (
            f"the flat views would take more than the {MAX_ALIAS_WORK:,} units of render work "
            "one commit may spend through aliases (aliases that loop through each other)"
        )
    else:
        message = (
            f"the flat views would take {budget.work:,} units of render work, more than the "
            f"{budget.limit:,} one commit may (too many regions or address spaces to render)"
        )
    return RenderWorkError(message, budget.work)
