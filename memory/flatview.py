"""Flat views: what a region tree looks like from an address space, one range at a time.

``render`` produces exactly the ranges of QEMU's ``render_memory_region`` followed by
``flatview_simplify``. QEMU inserts each region's uncovered parts into a sorted array as it walks
the tree, which costs O(n) per region; we walk the tree the same way but only record each
terminating region's clipped span ("paint item") in precedence order, then resolve, for every
elementary segment between two span boundaries, the first item that covers it. A union-find over
the segments skips the ones already painted, so the whole render is O(n log n).

``render`` pauses the cyclic garbage collector while it runs; see its docstring for the
contract. Its work is bounded (``RenderBudget``): aliases that loop through each other stop
being followed once a budget of visited regions runs out. The rules are RENDER-1 to RENDER-14
in ``docs/memory-rules.md``.
"""

from __future__ import annotations

import gc
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import structlog

from .access import TWO64

if TYPE_CHECKING:
    from .region import MemoryRegion

log = structlog.get_logger("mmiobus.render")


class FlatRange:
    """A run of addresses that resolves to one terminal region (QEMU's ``FlatRange``).

    ``start``/``end`` are address-space addresses (``end`` exclusive, at most 2**64);
    ``offset`` is where ``start`` falls inside ``mr``. Whether an access is direct (RAM) or goes
    to ops is decided from the region's live flags at access time, as QEMU does.
    """

    __slots__ = (
        "end",
        "mr",
        "nonvolatile",
        "offset",
        "readonly",
        "romd_mode",
        "start",
        "unmergeable",
    )

    def __init__(
        self,
        start: int,
        end: int,
        mr: MemoryRegion,
        offset: int,
        readonly: bool,
        nonvolatile: bool,
        unmergeable: bool,
    ) -> None:
        self.start = start
        self.end = end
        self.mr = mr
        self.offset = offset
        self.readonly = readonly
        self.nonvolatile = nonvolatile
        self.unmergeable = unmergeable
        self.romd_mode = mr.romd_mode

    @property
    def size(self) -> int:
        """``end - start``: 1..2**64 (merged ranges never empty)."""
        return self.end - self.start

    def key(self) -> tuple[int, int, int, int, bool, bool, bool, bool]:
        """What QEMU's ``flatrange_equal`` compares (region identity included)."""
        return (
            id(self.mr),
            self.start,
            self.end,
            self.offset,
            self.romd_mode,
            self.readonly,
            self.nonvolatile,
            self.unmergeable,
        )

    def __repr__(self) -> str:
        return (
            f"<FlatRange {self.start:#x}-{self.end - 1:#x} {self.mr.name!r} "
            f"@{self.offset:#x}{' ro' if self.readonly else ''}>"
        )


class _NoRange(FlatRange):
    """Stands in for "no most-recently-used range": a range that contains no address
    (``start`` 1 is past ``end`` 0), so a containment test always fails and its region and
    flags, which it does not have, are never looked at. Being a ``FlatRange`` keeps the
    access fast path free of a ``None`` test."""

    __slots__ = ()

    def __init__(self) -> None:  # no region: see above
        self.start = 1
        self.end = 0

    def __repr__(self) -> str:
        return "<no FlatRange>"


NO_RANGE = _NoRange()


class FlatView:
    """The sorted, non-overlapping ranges of one rendered tree; ``root`` is where rendering
    started (QEMU's flat-view root, possibly below the address space's root), or ``None``.
    ``truncated``: rendering ran out of its budget for aliases (``MAX_ALIAS_WORK``), so what
    shows only through deeply nested looping aliases may be missing."""

    __slots__ = ("mru", "ranges", "root", "starts", "truncated")

    def __init__(
        self, root: MemoryRegion | None, ranges: list[FlatRange], truncated: bool = False
    ) -> None:
        self.root = root
        self.ranges = ranges
        self.truncated = truncated
        # Fresh int objects allocated one after another: a binary search over a large view then
        # touches memory that is close together instead of ints scattered over the heap.
        self.starts = array("Q", [fr.start for fr in ranges]).tolist()
        # The most recently used range, tried before the binary search (QEMU keeps one too).
        self.mru: FlatRange = ranges[0] if ranges else NO_RANGE

    def lookup(self, addr: int) -> FlatRange | None:
        """The range containing ``addr``, by binary search; ``None`` for a hole, and for an
        address outside 0..2**64-1. Also makes that range the most recently used one."""
        i = bisect_right(self.starts, addr) - 1
        if i >= 0:
            fr = self.ranges[i]
            if addr < fr.end:
                self.mru = fr
                return fr
        return None

    def __iter__(self) -> Iterator[FlatRange]:
        return iter(self.ranges)

    def __len__(self) -> int:
        return len(self.ranges)


EMPTY_VIEW = FlatView(None, [])


def flatview_root(mr: MemoryRegion | None) -> MemoryRegion | None:
    """The region QEMU actually renders for an address space rooted at ``mr``.

    Walks down through an alias that shows its whole target from offset 0, and through a pure
    container whose only enabled child sits at 0 and fits, so that address spaces that differ
    only by such wrappers share one flat view (QEMU's ``memory_region_get_flatview_root``).
    ``None`` means the empty view: the root (or what it reduces to) is disabled, or a container
    with no enabled child.
    """
    seen: set[int] = set()
    while mr is not None and mr.enabled:
        if id(mr) in seen:  # a loop of full-size aliases: render from here
            return mr
        seen.add(id(mr))
        if mr.alias is not None:
            if mr.alias_offset == 0 and mr.size >= mr.alias.size:
                mr = mr.alias
                continue
        elif not mr.terminates:
            found = 0
            nxt = None
            for child in reversed(mr._subs):
                if child.enabled:
                    found += 1
                    if found > 1:
                        nxt = None
                        break
                    if child.addr == 0 and mr.size >= child.size:
                        nxt = child
            if found == 0:
                return None
            if nxt is not None:
                mr = nxt
                continue
        return mr
    return None


# A paint item: (start, end, region, region base in AS coordinates, readonly, nonvolatile,
# unmergeable). The region's offset at address a is a - base.
_Item = tuple[int, int, "MemoryRegion", int, bool, bool, bool]

MAX_ALIAS_NESTING = 32
"""How often one alias may appear on a render path. Aliases may point at their own ancestors
(QEMU machines mirror I/O windows that way); each pass through such a loop shifts the window, so
the clip shrinks until nothing is left. A loop that does not shift would recurse forever (QEMU
overflows its stack); we stop it where an alias is re-entered at the same place, and cap
shifting loops at this depth."""

MAX_ALIAS_WORK = 1 << 18
"""How much work the renders of one commit may spend by way of aliases (RENDER-14): a region
visited through an alias costs 1, entering an alias nested ``n`` deep costs ``n`` more (the
path is copied and searched). Aliases that loop through each other multiply the render paths
(each may nest ``MAX_ALIAS_NESTING`` deep), which would take practically forever — and stall
the whole bus; real machines need far less (the q800's 255-fold I/O mirror takes about 70,000;
the other machines in tests/fixtures/qemu far less). Past it, rendering follows no more aliases
(everything reached without them is still rendered) and the view says it is ``truncated``."""

MAX_RENDER_WORK = 1 << 19
"""How much work the renders of one commit may take in all, for ``MemorySystem.atomic()`` to
accept the transaction (RENDER-14): every region visited costs 1, every range painted 8 more
(painting, merging and building it costs about that), and alias nesting as for
``MAX_ALIAS_WORK``. About 50,000 plain regions, or the q800 (about 85,000): a commit's render
stays within tens of milliseconds."""

# What a painted range costs, in units of a region visited.
_PAINT_WORK = 8

# What _collect says of a render.
COMPLETE, LOOP_CUT, TRUNCATED = 0, 1, 2


class RenderBudget:
    """The work renders may still spend (RENDER-14). One budget is shared by every render of a
    transaction, so that the work of a commit is bounded whatever the number of address
    spaces. ``alias_left``: what may still be spent by way of aliases; ``work``: what was
    spent in all, against ``limit``; ``exhausted``: a render stopped following aliases because
    ``alias_left`` ran out (its view is ``truncated``)."""

    __slots__ = ("alias_left", "exhausted", "limit", "work")

    def __init__(self) -> None:
        self.alias_left = MAX_ALIAS_WORK
        self.limit = MAX_RENDER_WORK
        self.work = 0
        self.exhausted = False

    @property
    def over(self) -> bool:
        """Whether the renders charged here took more work than a commit may."""
        return self.exhausted or self.work > self.limit


class _Emit(tuple):
    """A paint item waiting on the render stack until its region's subregions are done."""

    __slots__ = ()


def _collect(root: MemoryRegion, out: list[_Item], budget: RenderBudget) -> int:
    """Walk the tree in QEMU's render order, appending one paint item per terminating region
    that shows through its clip. Returns COMPLETE, LOOP_CUT (an alias loop had to be cut short)
    or TRUNCATED (the alias budget ran out). The work is charged to ``budget``."""
    outcome = COMPLETE
    alias_left = budget.alias_left
    work = 0
    alias_work = 0
    # Mirrors render_memory_region (the same walk, clipping and order) with an explicit stack:
    # a region's subregions are pushed lowest precedence first, so the highest pops first, and
    # its own paint item is pushed below them, so it comes after all of them. A frame reached
    # through aliases carries one key per alias entered in ``path`` and the aliases' ids in
    # ``ids``, so that the loop tests below are C-speed tuple operations.
    stack: list[Any] = [(root, 0, 0, TWO64, False, False, False, (), ())]
    pop, push = stack.pop, stack.append
    while stack:
        frame = pop()
        if type(frame) is _Emit:
            out.append(frame)
            continue
        mr, base, clip_start, clip_end, ro, nv, um, path, ids = frame
        work += 1
        if path:  # reached through an alias
            alias_work += 1
            if alias_work > alias_left:
                outcome = TRUNCATED
                continue
        if not mr.enabled:
            continue
        base += mr.addr
        ro = ro or mr.readonly
        nv = nv or mr.nonvolatile
        um = um or mr.unmergeable
        start = base if base > clip_start else clip_start
        end = base + mr.size
        if end > clip_end:
            end = clip_end
        if start >= end:
            continue
        alias = mr.alias
        if alias is not None:
            target_base = base - alias.addr - mr.alias_offset
            ident = id(mr)
            key = (target_base << 64) | ident  # (alias, place): unique, and a C-speed compare
            if path and (key in path or ids.count(ident) >= MAX_ALIAS_NESTING):
                outcome = max(outcome, LOOP_CUT)
                continue
            depth = len(path)
            work += depth
            alias_work += depth
            push((alias, target_base, start, end, ro, nv, um, (*path, key), (*ids, ident)))
            continue
        if mr.terminates:
            work += _PAINT_WORK
            push(_Emit((start, end, mr, base, ro, nv, um)))
        for sub in mr._subs:
            push((sub, base, start, end, ro, nv, um, path, ids))
    budget.work += work
    budget.alias_left = max(0, alias_left - alias_work)
    if outcome == TRUNCATED:
        budget.exhausted = True
    return outcome


def render(root: MemoryRegion | None, budget: RenderBudget | None = None) -> FlatView:
    """Render the tree under ``root`` (from address 0, clipped to [0, 2**64)) and simplify it.

    ``root`` is rendered as it is (reduce an address space's root with ``flatview_root``
    first); ``None`` gives an empty view. Every region visited is charged to ``budget`` (a
    fresh ``RenderBudget`` of ``MAX_ALIAS_WORK`` when not given); once it is spent, rendering
    follows no more aliases and the view is marked ``truncated`` (RENDER-14). Aliases that
    loop are cut (logged). Nothing is raised.

    Garbage collection: while it runs, ``render`` pauses Python's cyclic garbage collector
    (``gc.disable()``) and afterwards, exceptions included, turns it back on if and only if it
    was on when rendering started. Rendering allocates an object or two per region and frees
    none of them, so collections during it would only rescan the heap (they double the time
    of a 100,000-region render). The pause is process-wide: other threads run without cyclic
    collection meanwhile (reference counting still frees everything else), and a thread that
    turns the collector off during a render finds it on again when the render ends. Code
    that needs the collector in a fixed state must not render concurrently.
    """
    if root is None:
        return FlatView(None, [])
    if budget is None:
        budget = RenderBudget()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        items: list[_Item] = []
        outcome = _collect(root, items, budget)
        if outcome == LOOP_CUT:
            log.warning("alias loop cut short while rendering", root=root.name)
        elif outcome == TRUNCATED:
            log.warning(
                "aliases loop through each other too often: rendering followed no more of them",
                root=root.name,
                alias_work=MAX_ALIAS_WORK,
            )
        return FlatView(root, simplify(_paint(items)), outcome == TRUNCATED)
    finally:
        if was_enabled:
            gc.enable()


def _paint(items: list[_Item]) -> list[FlatRange]:
    """Resolve each address to the first item covering it; one FlatRange per maximal run."""
    if not items:
        return []
    order = sorted(range(len(items)), key=lambda n: items[n][0])
    end = -1
    for n in order:  # the common case: nothing overlaps, so precedence decides nothing
        if items[n][0] < end:
            break
        end = items[n][1]
    else:
        return [
            FlatRange(s, e, mr, s - base, ro, nv, um)
            for s, e, mr, base, ro, nv, um in (items[n] for n in order)
        ]
    return _paint_overlapping(items)


def _paint_overlapping(items: list[_Item]) -> list[FlatRange]:
    """Precedence over overlaps: the elementary segments between span boundaries each go to the
    first item that covers them; a union-find skips segments already painted."""
    bounds = sorted({x for it in items for x in (it[0], it[1])})
    index = {x: i for i, x in enumerate(bounds)}
    nseg = len(bounds) - 1
    owner: list[int] = [-1] * nseg
    # nxt[k]: candidate for the first unpainted segment >= k (path-compressed union-find).
    nxt = list(range(nseg + 1))

    def find(k: int) -> int:
        root = k
        while nxt[root] != root:
            root = nxt[root]
        while nxt[k] != root:
            nxt[k], k = root, nxt[k]
        return root

    for n, it in enumerate(items):
        k = find(index[it[0]])
        last = index[it[1]]
        while k < last:
            owner[k] = n
            nxt[k] = k + 1
            k = find(k + 1)

    ranges: list[FlatRange] = []
    k = 0
    while k < nseg:
        n = owner[k]
        if n < 0:
            k += 1
            continue
        j = k + 1
        while j < nseg and owner[j] == n:
            j += 1
        _s, _e, mr, base, ro, nv, um = items[n]
        start, end = bounds[k], bounds[j]
        ranges.append(FlatRange(start, end, mr, start - base, ro, nv, um))
        k = j
    return ranges


def simplify(ranges: list[FlatRange]) -> list[FlatRange]:
    """Merge neighbours that continue one another in the same region (QEMU's
    ``flatview_simplify``): adjacent, same region, contiguous offsets, equal flags, and neither
    unmergeable."""
    out: list[FlatRange] = []
    for fr in ranges:
        if out:
            prev = out[-1]
            if (
                prev.end == fr.start
                and prev.mr is fr.mr
                and prev.offset + (prev.end - prev.start) == fr.offset
                and prev.romd_mode == fr.romd_mode
                and prev.readonly == fr.readonly
                and prev.nonvolatile == fr.nonvolatile
                and not prev.unmergeable
                and not fr.unmergeable
            ):
                prev.end = fr.end
                continue
        out.append(fr)
    return out
