"""The region tree and its mutators: sizes, priorities, mapping, moving, flags and
transactions (docs/memory-rules.md: REGION, TREE and TXN rules), plus ``MemorySystem.atomic()``.

Expected flat views are worked out from those rules, not captured from the model.
"""

from __future__ import annotations

import pytest
from mmiobus.memory import (
    CycleError,
    InvalidArgumentError,
    MemoryListener,
    MemoryRegionOps,
    MemorySystem,
    MemTxResult,
    NotMappedError,
    RegionInUseError,
    TransactionError,
)

TWO64 = 1 << 64
MASK64 = TWO64 - 1


def ranges(as_):
    """The current flat view as (start, end, region name, offset in region) tuples."""
    return [(fr.start, fr.end, fr.mr.name, fr.offset) for fr in as_.flatview.ranges]


def machine():
    """A memory system with an empty 2**64 ``system`` container and its ``memory`` AS."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    return ms, root, ms.address_space("memory", root)


class Counter(MemoryListener):
    """Counts topology commits (begin/commit pairs) after registration."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def begin(self) -> None:
        self.calls.append("begin")

    def commit(self) -> None:
        self.calls.append("commit")


def counted(as_):
    listener = Counter()
    as_.register_listener(listener)
    listener.calls.clear()  # forget the registration replay
    return listener


class Boom(Exception):
    pass


# -- sizes (REGION-1 to REGION-3) -------------------------------------------------------------


def test_size_uint64_max_means_two_to_the_64():
    """REGION-1: UINT64_MAX is stored as 2**64."""
    ms = MemorySystem()
    assert ms.container("c", MASK64).size == TWO64
    assert ms.mmio("m", MASK64).size == TWO64


def test_size_two_to_the_64_is_stored_as_given():
    """REGION-1: every value other than UINT64_MAX is stored as-is."""
    ms = MemorySystem()
    assert ms.container("c", TWO64).size == TWO64


def test_size_zero_is_legal():
    """REGION-3."""
    ms = MemorySystem()
    assert ms.container("c", 0).size == 0
    assert ms.ram("r", 0).size == 0


def test_size_uint64_max_region_covers_the_last_byte():
    """REGION-1: a UINT64_MAX-sized region spans all of [0, 2**64), last byte included."""
    ms, root, as_ = machine()
    root.add_subregion(0, ms.mmio("whole", MASK64))
    assert ranges(as_) == [(0, TWO64, "whole", 0)]


@pytest.mark.parametrize("size", [-1, TWO64 + 1, 1 << 65])
def test_size_outside_zero_to_two_to_the_64_raises(size):
    """REGION-1: sizes are i128 in [0, 2**64]; anything else is an invalid argument."""
    ms = MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.container("c", size)
    with pytest.raises(InvalidArgumentError):
        ms.mmio("m", size)
    with pytest.raises(InvalidArgumentError):
        ms.alias("a", ms.container("t", 0x1000), 0, size)


@pytest.mark.parametrize("size", [1.5, True, "16", None])
def test_size_must_be_an_integer(size):
    """REGION-1 (ours): a non-integer size is an invalid argument, not a crash."""
    ms = MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.container("c", size)


def test_set_size_converts_uint64_max_to_two_to_the_64():
    """REGION-2: set_size applies the same conversion as the constructor."""
    ms = MemorySystem()
    mr = ms.mmio("m", 0x1000)
    mr.set_size(MASK64)
    assert mr.size == TWO64


@pytest.mark.parametrize("size", [-1, TWO64 + 1])
def test_set_size_out_of_range_raises_and_keeps_size(size):
    """REGION-2: an invalid new size is rejected and the region is unchanged."""
    ms = MemorySystem()
    mr = ms.mmio("m", 0x1000)
    with pytest.raises(InvalidArgumentError):
        mr.set_size(size)
    assert mr.size == 0x1000


def test_set_size_to_converted_equal_value_is_a_no_op():
    """REGION-2: set_size(UINT64_MAX) on a 2**64 region changes nothing, so no commit."""
    ms, root, as_ = machine()
    mr = ms.mmio("m", TWO64)
    root.add_subregion(0, mr)
    listener = counted(as_)
    mr.set_size(MASK64)
    assert listener.calls == []


def test_set_size_grows_and_shrinks_the_rendered_span():
    """RENDER-6: size clips what the region renders."""
    ms, root, as_ = machine()
    mr = ms.mmio("m", 0x1000)
    root.add_subregion(0x4000, mr)
    mr.set_size(0x3000)
    assert ranges(as_) == [(0x4000, 0x7000, "m", 0)]
    mr.set_size(0x800)
    assert ranges(as_) == [(0x4000, 0x4800, "m", 0)]


# -- add_subregion (TREE-1 to TREE-4) -------------------------------------------------------


def test_equal_priority_newest_sibling_wins():
    """TREE-1: among equal priorities the most recently added is visible."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("x", 0x2000))
    root.add_subregion(0x1000, ms.mmio("y", 0x2000))
    assert ranges(as_) == [(0x0, 0x1000, "x", 0), (0x1000, 0x3000, "y", 0)]


def test_higher_priority_wins_regardless_of_insertion_order():
    """TREE-1: the list is sorted by descending priority."""
    ms, root, as_ = machine()
    root.add_subregion(0x1000, ms.mmio("high", 0x2000), priority=1)
    root.add_subregion(0x0, ms.mmio("low", 0x2000), priority=0)
    assert ranges(as_) == [(0x0, 0x1000, "low", 0), (0x1000, 0x3000, "high", 0)]


def test_negative_priority_loses_to_default_priority():
    """REGION-4: priority is a signed int32."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("default", 0x1000))
    root.add_subregion(0x0, ms.mmio("negative", 0x2000), priority=-1)
    assert ranges(as_) == [(0x0, 0x1000, "default", 0), (0x1000, 0x2000, "negative", 0x1000)]


def test_subregion_list_is_priority_descending_newest_first():
    """TREE-1: insert before the first sibling whose priority is <= the new one."""
    ms = MemorySystem()
    c = ms.container("c", 0x1000)
    for name, prio in [("a", 0), ("b", 1), ("c0", 0), ("d", 1), ("e", -1)]:
        c.add_subregion(0, ms.mmio(name, 0x10), priority=prio)
    assert [mr.name for mr in c.subregions] == ["d", "b", "c0", "a", "e"]


def test_add_subregion_sets_container_addr_and_priority():
    """TREE-4: mapping records the container and the offset."""
    ms = MemorySystem()
    c = ms.container("c", 0x10000)
    sub = ms.mmio("s", 0x100)
    c.add_subregion(0x300, sub, priority=7)
    assert (sub.container, sub.addr, sub.priority) == (c, 0x300, 7)


def test_add_subregion_without_priority_resets_it_to_zero():
    """TREE-3 (ours: explicit priority, default 0): a previous priority is not remembered."""
    ms, root, as_ = machine()
    sub = ms.mmio("sub", 0x1000)
    root.add_subregion(0x0, sub, priority=5)
    root.del_subregion(sub)
    root.add_subregion(0x0, ms.mmio("other", 0x1000), priority=1)
    root.add_subregion(0x0, sub)
    assert sub.priority == 0
    assert ranges(as_) == [(0x0, 0x1000, "other", 0)]


def test_overlapping_subregions_are_accepted_without_error():
    """TREE-2: there is no overlap detection."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    root.add_subregion(0x0, ms.mmio("b", 0x1000))
    assert ranges(as_) == [(0x0, 0x1000, "b", 0)]


# -- del_subregion (TREE-6) -----------------------------------------------------------------


def test_del_subregion_unmaps_the_region():
    """TREE-6."""
    ms, root, as_ = machine()
    sub = ms.mmio("sub", 0x1000)
    root.add_subregion(0x2000, sub)
    root.del_subregion(sub)
    assert sub.container is None
    assert ranges(as_) == []


def test_del_subregion_keeps_addr_and_priority():
    """TREE-6."""
    ms = MemorySystem()
    c = ms.container("c", 0x10000)
    sub = ms.mmio("s", 0x100)
    c.add_subregion(0x300, sub, priority=-4)
    c.del_subregion(sub)
    assert (sub.addr, sub.priority) == (0x300, -4)


def test_del_subregion_reveals_the_sibling_below():
    """RENDER-1: removing the winner of an overlap shows the next region in list order."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("low", 0x2000))
    high = ms.mmio("high", 0x1000)
    root.add_subregion(0x0, high, priority=1)
    root.del_subregion(high)
    assert ranges(as_) == [(0x0, 0x2000, "low", 0)]


# -- setters (TREE-7 to TREE-10) --------------------------------------------------------------


def test_set_address_to_same_value_is_a_no_op():
    """TREE-7: set_address(X, X.addr) does not re-insert X, so Y still wins the overlap."""
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x2000)
    root.add_subregion(0x0, x)
    root.add_subregion(0x1000, ms.mmio("y", 0x2000))
    x.set_address(0x0)
    assert ranges(as_) == [(0x0, 0x1000, "x", 0), (0x1000, 0x3000, "y", 0)]


def test_set_address_reinserts_first_among_equal_priority():
    """TREE-7: a moved region becomes the newest of its priority and wins overlaps."""
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x2000)
    root.add_subregion(0x0, x)
    root.add_subregion(0x1000, ms.mmio("y", 0x2000))
    x.set_address(0x800)
    assert ranges(as_) == [(0x800, 0x2800, "x", 0), (0x2800, 0x3000, "y", 0x1800)]


def test_set_address_keeps_the_priority():
    """TREE-7: the re-insertion uses the same priority, not 0."""
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x1000)
    root.add_subregion(0x0, x, priority=-1)
    root.add_subregion(0x2000, ms.mmio("n", 0x1000))
    x.set_address(0x2000)
    assert x.priority == -1
    assert ranges(as_) == [(0x2000, 0x3000, "n", 0)]


def test_set_address_of_an_unmapped_region_only_changes_the_field():
    """TREE-7: without a container only ``addr`` changes."""
    ms = MemorySystem()
    mr = ms.mmio("m", 0x100)
    mr.set_address(0x4000)
    assert (mr.addr, mr.container) == (0x4000, None)


def test_set_priority_reinserts_first_among_the_new_priority():
    """TREE-7 (ours): set_priority behaves like a move, newest among its new priority."""
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x2000)
    root.add_subregion(0x0, x, priority=0)
    root.add_subregion(0x1000, ms.mmio("y", 0x2000), priority=1)
    x.set_priority(1)
    assert x.priority == 1
    assert ranges(as_) == [(0x0, 0x2000, "x", 0), (0x2000, 0x3000, "y", 0x1000)]


def test_set_priority_to_same_value_is_a_no_op():
    """TREE-7 (ours): like set_address, an unchanged priority does not re-insert."""
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x2000)
    root.add_subregion(0x0, x)
    root.add_subregion(0x1000, ms.mmio("y", 0x2000))
    x.set_priority(0)
    assert ranges(as_) == [(0x0, 0x1000, "x", 0), (0x1000, 0x3000, "y", 0)]


def test_set_priority_lower_lets_the_sibling_win():
    """RENDER-1 after set_priority."""
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x1000)
    root.add_subregion(0x0, x, priority=1)
    root.add_subregion(0x0, ms.mmio("y", 0x1000), priority=0)
    x.set_priority(-1)
    assert ranges(as_) == [(0x0, 0x1000, "y", 0)]


def test_set_priority_keeps_the_address():
    ms = MemorySystem()
    c = ms.container("c", 0x10000)
    x = ms.mmio("x", 0x100)
    c.add_subregion(0x500, x)
    x.set_priority(3)
    assert (x.container, x.addr, x.priority) == (c, 0x500, 3)


def test_set_enabled_false_hides_the_region_and_true_shows_it():
    """RENDER-2."""
    ms, root, as_ = machine()
    mr = ms.mmio("m", 0x1000)
    root.add_subregion(0x1000, mr)
    mr.set_enabled(False)
    assert ranges(as_) == []
    mr.set_enabled(True)
    assert ranges(as_) == [(0x1000, 0x2000, "m", 0)]


def test_reenabling_does_not_change_precedence():
    """TREE-8: set_enabled only flips the flag; the list position (and so TREE-1 order) is kept."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("x", 0x2000))
    y = ms.mmio("y", 0x2000)
    root.add_subregion(0x1000, y)
    y.set_enabled(False)
    assert ranges(as_) == [(0x0, 0x2000, "x", 0)]
    y.set_enabled(True)
    assert ranges(as_) == [(0x0, 0x1000, "x", 0), (0x1000, 0x3000, "y", 0)]


def test_set_alias_offset_slides_the_window():
    """RENDER-5."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x10000)
    window = ms.alias("window", ram, 0x0, 0x1000)
    root.add_subregion(0x8000, window)
    window.set_alias_offset(0x3000)
    assert window.alias_offset == 0x3000
    assert ranges(as_) == [(0x8000, 0x9000, "ram", 0x3000)]


def test_set_alias_offset_on_a_non_alias_raises():
    """TREE-10: QEMU asserts mr.alias; we raise."""
    ms = MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.ram("ram", 0x1000).set_alias_offset(0x10)


@pytest.mark.parametrize("offset", [-1, TWO64])
def test_set_alias_offset_out_of_u64_range_raises(offset):
    ms = MemorySystem()
    window = ms.alias("w", ms.ram("ram", 0x1000), 0, 0x100)
    with pytest.raises(InvalidArgumentError):
        window.set_alias_offset(offset)
    assert window.alias_offset == 0


def test_set_readonly_on_a_container_flags_the_ranges_below():
    """RENDER-8: readonly is OR-ed down the path into the FlatRanges."""
    ms, root, as_ = machine()
    board = ms.container("board", 0x10000)
    board.add_subregion(0x0, ms.ram("ram", 0x1000))
    root.add_subregion(0x10000, board)
    board.set_readonly(True)
    assert [(fr.mr.name, fr.readonly) for fr in as_.flatview.ranges] == [("ram", True)]
    board.set_readonly(False)
    assert [(fr.mr.name, fr.readonly) for fr in as_.flatview.ranges] == [("ram", False)]


def test_set_readonly_on_a_ram_leaf_makes_writes_fail():
    """REGION-8, ROM-1: a readonly RAM leaf drops writes with MEMTX_DECODE_ERROR."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000, data=b"\x11")
    root.add_subregion(0x1000, ram)
    ram.set_readonly(True)
    assert as_.write(0x1000, b"\x22") == MemTxResult.DECODE_ERROR
    assert as_.read(0x1000, 1) == (b"\x11", MemTxResult.OK)


def test_set_nonvolatile_flags_the_ranges_below():
    """RENDER-8: nonvolatile propagates like readonly."""
    ms, root, as_ = machine()
    board = ms.container("board", 0x10000)
    board.add_subregion(0x0, ms.ram("ram", 0x1000))
    root.add_subregion(0x10000, board)
    board.set_nonvolatile(True)
    assert [fr.nonvolatile for fr in as_.flatview.ranges] == [True]


def test_set_romd_false_sends_reads_to_the_ops():
    """ROM-3: out of ROMD mode reads go to ops.read."""
    ms, root, as_ = machine()
    ops = MemoryRegionOps(read=lambda offset, size, attrs: 0x5A)
    flash = ms.romd("flash", 0x1000, ops=ops, data=b"\x11")
    root.add_subregion(0x1000, flash)
    assert as_.read(0x1000, 1).data == b"\x11"
    flash.set_romd(False)
    assert [fr.romd_mode for fr in as_.flatview.ranges] == [False]
    assert as_.read(0x1000, 1).data == b"\x5a"
    flash.set_romd(True)
    assert [fr.romd_mode for fr in as_.flatview.ranges] == [True]
    assert as_.read(0x1000, 1).data == b"\x11"


def test_set_romd_on_a_non_rom_device_raises():
    ms = MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.ram("ram", 0x1000).set_romd(False)


# -- errors -----------------------------------------------------------------------------------


def test_mapping_a_region_twice_in_one_container_raises_region_in_use():
    """TREE-4: a region has at most one container."""
    ms = MemorySystem()
    c = ms.container("c", 0x10000)
    sub = ms.mmio("s", 0x100)
    c.add_subregion(0x0, sub)
    with pytest.raises(RegionInUseError):
        c.add_subregion(0x1000, sub)
    assert (sub.addr, [mr.name for mr in c.subregions]) == (0x0, ["s"])


def test_mapping_a_region_in_a_second_container_raises_region_in_use():
    """TREE-4: use an alias to map a region elsewhere."""
    ms = MemorySystem()
    first, second = ms.container("first", 0x10000), ms.container("second", 0x10000)
    sub = ms.mmio("s", 0x100)
    first.add_subregion(0x0, sub)
    with pytest.raises(RegionInUseError):
        second.add_subregion(0x0, sub)
    assert sub.container is first
    assert second.subregions == []


def test_removing_a_region_that_was_never_mapped_raises_not_mapped():
    """TREE-6."""
    ms = MemorySystem()
    with pytest.raises(NotMappedError):
        ms.container("c", 0x1000).del_subregion(ms.mmio("s", 0x10))


def test_removing_a_region_from_the_wrong_container_raises_not_mapped():
    """TREE-6: sub.container must be the container it is removed from."""
    ms = MemorySystem()
    first, second = ms.container("first", 0x10000), ms.container("second", 0x10000)
    sub = ms.mmio("s", 0x100)
    first.add_subregion(0x0, sub)
    with pytest.raises(NotMappedError):
        second.del_subregion(sub)
    assert sub.container is first


def test_mapping_a_region_inside_itself_raises_cycle():
    """TREE-5 (ours): cycles are rejected."""
    ms = MemorySystem()
    c = ms.container("c", 0x1000)
    with pytest.raises(CycleError):
        c.add_subregion(0x0, c)
    assert c.container is None


def test_mapping_an_ancestor_under_its_descendant_raises_cycle():
    """TREE-5: a loop through subregions."""
    ms = MemorySystem()
    top, mid, leaf = (ms.container(n, 0x1000) for n in ("top", "mid", "leaf"))
    top.add_subregion(0x0, mid)
    mid.add_subregion(0x0, leaf)
    with pytest.raises(CycleError):
        leaf.add_subregion(0x0, top)
    assert top.container is None
    assert leaf.subregions == []


def test_alias_may_point_at_its_own_ancestor_and_mirror_it():
    """Ours (docs/memory-model.md, where we differ): an alias may loop back; real machines map
    aliases of a container inside that container (m68k q800 mirrors its I/O window 255 times).
    Each pass through such a loop shifts the window, so rendering ends."""
    ms = MemorySystem()
    system = ms.container("system", 0x10000)
    io = ms.mmio("io", 0x100)
    system.add_subregion(0x1000, io)
    system.add_subregion(0x2000, ms.alias("mirror", system, 0x1000, 0x100))
    as_ = ms.address_space("memory", system)
    assert ranges(as_) == [(0x1000, 0x1100, "io", 0), (0x2000, 0x2100, "io", 0)]


def test_alias_loop_that_does_not_shift_is_cut_instead_of_recursing_forever():
    """An alias that shows its own container at the same place would recurse forever in QEMU;
    the render enters it once and stops where it would re-enter at the same place."""
    ms = MemorySystem()
    target = ms.container("target", 0x1000)
    target.add_subregion(0x800, ms.ram("r", 0x100))
    target.add_subregion(0x0, ms.alias("window", target, 0, 0x1000), priority=1)
    as_ = ms.address_space("memory", target)
    assert ranges(as_) == [(0x800, 0x900, "r", 0)]


def test_aliases_that_loop_through_each_other_render_in_bounded_work():
    """Two aliases of a container inside it, each shifting it a little, multiply the render
    paths (each alias may nest MAX_ALIAS_NESTING deep: billions of paths). Rendering stops
    following aliases after MAX_ALIAS_WORK regions visited through them, keeps everything
    reached without them, and says the view is truncated."""
    ms = MemorySystem()
    system = ms.container("system", TWO64)
    system.add_subregion(0x0, ms.ram("ram", 0x10))
    system.add_subregion(0x1, ms.alias("a", system, 0, TWO64 - 1))
    system.add_subregion(0x2, ms.alias("b", system, 0, TWO64 - 2))
    as_ = ms.address_space("memory", system)
    assert as_.flatview.truncated
    assert ranges(as_)[0] == (0x0, 0x10, "ram", 0)  # the RAM itself, reached without aliases
    assert as_.read(0x0, 4).result == MemTxResult.OK


def test_a_single_mirror_loop_is_not_truncated():
    """One shifting loop, like the q800's I/O mirror, stays well inside the alias budget."""
    ms = MemorySystem()
    system = ms.container("system", 0x10000)
    system.add_subregion(0x1000, ms.mmio("io", 0x100))
    system.add_subregion(0x2000, ms.alias("mirror", system, 0x1000, 0x100))
    as_ = ms.address_space("memory", system)
    assert not as_.flatview.truncated


def test_mapping_a_container_holding_an_alias_into_the_alias_target_is_allowed():
    """The loop target -> holder -> alias -> target is legal; only a region inside itself is
    a cycle."""
    ms = MemorySystem()
    target = ms.container("target", 0x1000)
    target.add_subregion(0x10, ms.ram("r", 0x10))
    holder = ms.container("holder", 0x1000)
    holder.add_subregion(0x0, ms.alias("window", target, 0, 0x1000))
    target.add_subregion(0x0, holder)
    as_ = ms.address_space("memory", target)
    assert ranges(as_) == [(0x10, 0x20, "r", 0)]


def test_aliasing_the_same_target_twice_is_not_a_cycle():
    """REGION-7: shared targets are fine, only loops are rejected."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    root.add_subregion(0x0, ms.alias("a", ram, 0, 0x1000))
    root.add_subregion(0x4000, ms.alias("b", ram, 0, 0x1000))
    assert ranges(as_) == [(0x0, 0x1000, "ram", 0), (0x4000, 0x5000, "ram", 0)]


@pytest.mark.parametrize("offset", [-1, TWO64, 0.5])
def test_add_subregion_offset_outside_u64_raises(offset):
    ms = MemorySystem()
    c, sub = ms.container("c", TWO64), ms.mmio("s", 0x10)
    with pytest.raises(InvalidArgumentError):
        c.add_subregion(offset, sub)
    assert sub.container is None


@pytest.mark.parametrize("priority", [1 << 31, -(1 << 31) - 1, 1.0])
def test_add_subregion_priority_outside_int32_raises(priority):
    """REGION-4: priority is a signed int32."""
    ms = MemorySystem()
    c, sub = ms.container("c", 0x1000), ms.mmio("s", 0x10)
    with pytest.raises(InvalidArgumentError):
        c.add_subregion(0, sub, priority=priority)
    assert sub.container is None


@pytest.mark.parametrize("priority", [(1 << 31) - 1, -(1 << 31)])
def test_add_subregion_accepts_int32_extremes(priority):
    ms = MemorySystem()
    c, sub = ms.container("c", 0x1000), ms.mmio("s", 0x10)
    c.add_subregion(0, sub, priority=priority)
    assert sub.priority == priority


def test_set_priority_outside_int32_raises():
    ms = MemorySystem()
    c, sub = ms.container("c", 0x1000), ms.mmio("s", 0x10)
    c.add_subregion(0, sub, priority=2)
    with pytest.raises(InvalidArgumentError):
        sub.set_priority(1 << 31)
    assert sub.priority == 2


@pytest.mark.parametrize("addr", [-1, TWO64])
def test_set_address_outside_u64_raises(addr):
    ms = MemorySystem()
    c, sub = ms.container("c", TWO64), ms.mmio("s", 0x10)
    c.add_subregion(0x100, sub)
    with pytest.raises(InvalidArgumentError):
        sub.set_address(addr)
    assert sub.addr == 0x100


def test_add_subregion_of_a_non_region_raises():
    ms = MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.container("c", 0x1000).add_subregion(0, "not a region")


def test_add_subregion_of_another_systems_region_raises():
    """A region belongs to the MemorySystem that created it."""
    ms, other = MemorySystem(), MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.container("c", 0x1000).add_subregion(0, other.mmio("s", 0x10))


def test_alias_of_another_systems_region_raises():
    ms, other = MemorySystem(), MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.alias("a", other.ram("r", 0x1000), 0, 0x100)


@pytest.mark.parametrize("offset", [-1, TWO64])
def test_alias_offset_outside_u64_raises(offset):
    ms = MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.alias("a", ms.ram("r", 0x1000), offset, 0x100)


def test_address_space_root_of_another_system_raises():
    ms, other = MemorySystem(), MemorySystem()
    with pytest.raises(InvalidArgumentError):
        ms.address_space("as", other.container("c", 0x1000))


# -- transactions (TXN-1 to TXN-6) --------------------------------------------------------


def test_accesses_see_the_old_view_until_the_outermost_commit():
    """TXN-2, TXN-5: nested commits do not publish; only the outermost does."""
    ms, root, as_ = machine()
    ms.begin()
    ms.begin()
    root.add_subregion(0x1000, ms.ram("ram", 0x1000, data=b"\x42"))
    assert as_.read(0x1000, 1) == (b"\x00", MemTxResult.DECODE_ERROR)
    ms.commit()
    assert as_.read(0x1000, 1) == (b"\x00", MemTxResult.DECODE_ERROR)
    assert ranges(as_) == []
    ms.commit()
    assert as_.read(0x1000, 1) == (b"\x42", MemTxResult.OK)
    assert ranges(as_) == [(0x1000, 0x2000, "ram", 0)]


def test_nested_transactions_publish_once_at_the_outermost_commit():
    """TXN-2, TXN-4: one begin/commit for the listeners, at the outermost commit."""
    ms, root, as_ = machine()
    listener = counted(as_)
    with ms.transaction():
        root.add_subregion(0x0, ms.mmio("a", 0x1000))
        with ms.transaction():
            root.add_subregion(0x1000, ms.mmio("b", 0x1000))
        assert listener.calls == []
        root.add_subregion(0x2000, ms.mmio("c", 0x1000))
    assert listener.calls == ["begin", "commit"]
    assert [r[2] for r in ranges(as_)] == ["a", "b", "c"]


def test_mutator_outside_a_transaction_publishes_at_once():
    """TXN-1: every mutator wraps itself in begin/commit."""
    ms, root, as_ = machine()
    listener = counted(as_)
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    assert listener.calls == ["begin", "commit"]
    assert ranges(as_) == [(0x0, 0x1000, "a", 0)]


def test_commit_without_begin_raises():
    """TXN-3: QEMU asserts; we raise TransactionError."""
    ms = MemorySystem()
    with pytest.raises(TransactionError):
        ms.commit()


def test_commit_after_a_balanced_pair_raises():
    """TXN-3: the depth counter never goes below zero."""
    ms = MemorySystem()
    ms.begin()
    ms.commit()
    with pytest.raises(TransactionError):
        ms.commit()
    assert not ms.in_transaction


def test_address_space_created_inside_a_transaction_is_rendered_at_once():
    """TXN-6: address_space_init renders immediately."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    with ms.transaction():
        root.add_subregion(0x1000, ms.mmio("a", 0x1000))
        root.add_subregion(0x4000, ms.mmio("b", 0x1000))
        as_ = ms.address_space("memory", root)
        assert ranges(as_) == [(0x1000, 0x2000, "a", 0), (0x4000, 0x5000, "b", 0)]


# -- MemorySystem.atomic() ----------------------------------------------------------------


def test_atomic_reraises_the_exception():
    ms, _, _ = machine()
    with pytest.raises(Boom), ms.atomic():
        raise Boom


def test_atomic_commits_normally_when_the_block_succeeds():
    ms, root, as_ = machine()
    listener = counted(as_)
    with ms.atomic():
        root.add_subregion(0x0, ms.mmio("a", 0x1000))
        root.add_subregion(0x1000, ms.mmio("b", 0x1000))
    assert listener.calls == ["begin", "commit"]
    assert [r[2] for r in ranges(as_)] == ["a", "b"]


def test_atomic_rollback_unmaps_an_added_region():
    ms, root, as_ = machine()
    sub = ms.mmio("sub", 0x1000)
    with pytest.raises(Boom), ms.atomic():
        root.add_subregion(0x1000, sub, priority=3)
        raise Boom
    assert sub.container is None
    assert root.subregions == []
    assert ranges(as_) == []


def test_atomic_rollback_restores_addr_and_priority_of_an_added_region():
    ms = MemorySystem()
    first, second = ms.container("first", 0x10000), ms.container("second", 0x10000)
    sub = ms.mmio("sub", 0x100)
    first.add_subregion(0x300, sub, priority=-2)
    first.del_subregion(sub)
    with pytest.raises(Boom), ms.atomic():
        second.add_subregion(0x500, sub, priority=4)
        raise Boom
    assert (sub.container, sub.addr, sub.priority) == (None, 0x300, -2)


def test_atomic_rollback_remaps_a_deleted_region_in_its_old_place():
    """The restored region keeps its old list position, so TREE-1 precedence is unchanged."""
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x2000)
    y = ms.mmio("y", 0x2000)
    root.add_subregion(0x0, y)
    root.add_subregion(0x1000, x)
    with pytest.raises(Boom), ms.atomic():
        root.del_subregion(y)
        raise Boom
    assert y.container is root
    assert ranges(as_) == [(0x0, 0x1000, "y", 0), (0x1000, 0x3000, "x", 0)]


def test_atomic_rollback_restores_address_and_precedence_after_a_move():
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x2000)
    root.add_subregion(0x0, x)
    root.add_subregion(0x1000, ms.mmio("y", 0x2000))
    with pytest.raises(Boom), ms.atomic():
        x.set_address(0x800)
        raise Boom
    assert x.addr == 0x0
    assert ranges(as_) == [(0x0, 0x1000, "x", 0), (0x1000, 0x3000, "y", 0)]


def test_atomic_rollback_restores_priority_and_precedence():
    ms, root, as_ = machine()
    x = ms.mmio("x", 0x2000)
    root.add_subregion(0x0, x)
    root.add_subregion(0x1000, ms.mmio("y", 0x2000))
    with pytest.raises(Boom), ms.atomic():
        x.set_priority(5)
        raise Boom
    assert x.priority == 0
    assert ranges(as_) == [(0x0, 0x1000, "x", 0), (0x1000, 0x3000, "y", 0)]


def test_atomic_rollback_restores_flags():
    ms, root, as_ = machine()
    board = ms.container("board", 0x10000)
    ram = ms.ram("ram", 0x1000)
    board.add_subregion(0x0, ram)
    root.add_subregion(0x10000, board)
    flash = ms.romd("flash", 0x1000)
    root.add_subregion(0x20000, flash)
    with pytest.raises(Boom), ms.atomic():
        board.set_readonly(True)
        board.set_nonvolatile(True)
        ram.set_enabled(False)
        flash.set_romd(False)
        raise Boom
    assert (board.readonly, board.nonvolatile, ram.enabled, flash.romd_mode) == (
        False,
        False,
        True,
        True,
    )
    assert [(fr.mr.name, fr.readonly, fr.nonvolatile) for fr in as_.flatview.ranges] == [
        ("ram", False, False),
        ("flash", False, False),
    ]


def test_atomic_rollback_restores_size():
    ms, root, as_ = machine()
    mr = ms.mmio("m", 0x1000)
    root.add_subregion(0x4000, mr)
    with pytest.raises(Boom), ms.atomic():
        mr.set_size(0x3000)
        raise Boom
    assert mr.size == 0x1000
    assert ranges(as_) == [(0x4000, 0x5000, "m", 0)]


def test_atomic_rollback_restores_alias_offset():
    ms, root, as_ = machine()
    window = ms.alias("window", ms.ram("ram", 0x10000), 0x1000, 0x1000)
    root.add_subregion(0x8000, window)
    with pytest.raises(Boom), ms.atomic():
        window.set_alias_offset(0x3000)
        raise Boom
    assert window.alias_offset == 0x1000
    assert ranges(as_) == [(0x8000, 0x9000, "ram", 0x1000)]


def test_atomic_rollback_removes_a_created_address_space():
    ms, _, memory = machine()
    io = ms.container("io", 0x10000)
    with pytest.raises(Boom), ms.atomic():
        ms.address_space("I/O", io)
        raise Boom
    assert ms.address_spaces == [memory]


def test_atomic_rollback_is_invisible_to_listeners():
    """No begin/commit at all: the rolled-back change never reaches a commit."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    listener = counted(as_)
    with pytest.raises(Boom), ms.atomic():
        b = ms.mmio("b", 0x1000)
        root.add_subregion(0x1000, b)
        b.set_enabled(False)
        raise Boom
    assert listener.calls == []
    assert ranges(as_) == [(0x0, 0x1000, "a", 0)]


def test_failed_inner_atomic_keeps_the_outer_blocks_changes():
    ms, root, as_ = machine()
    with ms.atomic():
        root.add_subregion(0x0, ms.mmio("kept", 0x1000))
        with pytest.raises(Boom), ms.atomic():
            root.add_subregion(0x1000, ms.mmio("dropped", 0x1000))
            raise Boom
    assert ranges(as_) == [(0x0, 0x1000, "kept", 0)]


def test_failed_outer_atomic_undoes_a_successful_inner_atomic():
    ms, root, as_ = machine()
    with pytest.raises(Boom), ms.atomic():
        with ms.atomic():
            root.add_subregion(0x0, ms.mmio("inner", 0x1000))
        raise Boom
    assert root.subregions == []
    assert ranges(as_) == []


def test_atomic_rollback_inside_a_transaction_keeps_earlier_changes():
    ms, root, as_ = machine()
    listener = counted(as_)
    with ms.transaction():
        root.add_subregion(0x0, ms.mmio("kept", 0x1000))
        with pytest.raises(Boom), ms.atomic():
            root.add_subregion(0x1000, ms.mmio("dropped", 0x1000))
            raise Boom
    assert listener.calls == ["begin", "commit"]
    assert ranges(as_) == [(0x0, 0x1000, "kept", 0)]


def test_address_space_created_after_a_rollback_sees_the_restored_tree():
    """A view rendered inside a rolled-back block must not leak into later address spaces."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    root.add_subregion(0x4000, ms.mmio("b", 0x1000))
    with pytest.raises(Boom), ms.atomic():
        root.add_subregion(0x8000, ms.mmio("dropped", 0x1000))
        ms.address_space("scratch", root)
        raise Boom
    later = ms.address_space("later", root)
    assert ranges(later) == [(0x0, 0x1000, "a", 0), (0x4000, 0x5000, "b", 0)]
