"""Rendering a region tree into a flat view: precedence, holes, aliases, clipping, the
flat-view root, merging and lookup (docs/memory-rules.md, RENDER-1 to RENDER-13).

Expected flat views are worked out from those rules, not captured from the model.
"""

from __future__ import annotations

import itertools

import pytest
from mmiobus.memory import MemorySystem, MemTxResult

TWO64 = 1 << 64
MASK64 = TWO64 - 1


def ranges(as_):
    """The current flat view as (start, end, region name, offset in region) tuples."""
    return [(fr.start, fr.end, fr.mr.name, fr.offset) for fr in as_.flatview.ranges]


def flags(as_):
    """(start, readonly, nonvolatile, unmergeable) of every range."""
    return [(fr.start, fr.readonly, fr.nonvolatile, fr.unmergeable) for fr in as_.flatview.ranges]


def machine():
    """A memory system with an empty 2**64 ``system`` container and its ``memory`` AS."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    return ms, root, ms.address_space("memory", root)


# -- worked examples ------------------------------------------------------------------------


def build_overlap_example(b_terminates: bool):
    """The overlap example of QEMU's docs/devel/memory.rst: container A (0x8000) with C (MMIO,
    0x6000 at 0, prio 1) and B (0x4000 at 0x2000, prio 2) holding D (0x1000 at B+0) and E
    (0x1000 at B+0x2000)."""
    ms = MemorySystem()
    a = ms.container("A", 0x8000)
    b = ms.mmio("B", 0x4000) if b_terminates else ms.container("B", 0x4000)
    b.add_subregion(0x0, ms.ram("D", 0x1000))
    b.add_subregion(0x2000, ms.ram("E", 0x1000))
    a.add_subregion(0x0, ms.mmio("C", 0x6000), priority=1)
    a.add_subregion(0x2000, b, priority=2)
    return ms.address_space("A", a)


def test_overlap_example_pure_container_holes_show_the_lower_priority_sibling():
    """RENDER-3: C fills the holes of the pure container B; A's own holes stay holes."""
    as_ = build_overlap_example(b_terminates=False)
    assert ranges(as_) == [
        (0x0000, 0x2000, "C", 0x0000),
        (0x2000, 0x3000, "D", 0x0000),
        (0x3000, 0x4000, "C", 0x3000),
        (0x4000, 0x5000, "E", 0x0000),
        (0x5000, 0x6000, "C", 0x5000),
    ]
    assert as_.flatview.lookup(0x7000) is None


def test_overlap_example_terminating_container_fills_its_own_holes():
    """RENDER-4: an MMIO B with subregions fills 0x3000 and 0x5000 itself."""
    as_ = build_overlap_example(b_terminates=True)
    assert ranges(as_) == [
        (0x0000, 0x2000, "C", 0x0000),
        (0x2000, 0x3000, "D", 0x0000),
        (0x3000, 0x4000, "B", 0x1000),
        (0x4000, 0x5000, "E", 0x0000),
        (0x5000, 0x6000, "B", 0x3000),
    ]


def test_aliases_map_two_halves_of_one_ram():
    """RENDER-5: an unmapped RAM is shown through two aliases at different offsets."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x10000)
    root.add_subregion(0x0, ms.alias("lo", ram, 0x0, 0x8000))
    root.add_subregion(0x100000, ms.alias("hi", ram, 0x8000, 0x8000))
    assert ranges(as_) == [(0x0, 0x8000, "ram", 0x0), (0x100000, 0x108000, "ram", 0x8000)]


def test_writes_through_one_alias_land_in_the_shared_ram():
    """RENDER-5: both aliases resolve to the same backing store."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x10000)
    root.add_subregion(0x0, ms.alias("lo", ram, 0x0, 0x10000))
    root.add_subregion(0x100000, ms.alias("hi", ram, 0x8000, 0x8000))
    assert as_.write(0x100010, b"\x5a") == MemTxResult.OK
    assert as_.read(0x8010, 1) == (b"\x5a", MemTxResult.OK)


# -- precedence (RENDER-1) ------------------------------------------------------------------


def test_higher_priority_subregion_hides_lower():
    """RENDER-1: a range produced earlier (higher priority) is never overwritten."""
    ms, root, as_ = machine()
    root.add_subregion(0x1000, ms.mmio("high", 0x1000), priority=1)
    root.add_subregion(0x0, ms.mmio("low", 0x4000))
    assert ranges(as_) == [
        (0x0, 0x1000, "low", 0x0),
        (0x1000, 0x2000, "high", 0x0),
        (0x2000, 0x4000, "low", 0x2000),
    ]


def test_priority_only_compares_between_siblings():
    """REGION-4, RENDER-1: a low-priority container's child beats a lower-priority sibling of that
    container even when the child itself has a very low priority."""
    ms, root, as_ = machine()
    box = ms.container("box", 0x2000)
    box.add_subregion(0x0, ms.mmio("inner", 0x1000), priority=-100)
    root.add_subregion(0x0, box, priority=1)
    root.add_subregion(0x0, ms.mmio("outer", 0x2000), priority=0)
    assert ranges(as_) == [(0x0, 0x1000, "inner", 0x0), (0x1000, 0x2000, "outer", 0x1000)]


def test_holes_of_holes_are_filled_recursively():
    """RENDER-3: pure containers at priorities 2 and 1 leave holes that the next sibling fills."""
    ms, root, as_ = machine()
    top = ms.container("top", 0x3000)
    top.add_subregion(0x0, ms.mmio("x", 0x1000))
    mid = ms.container("mid", 0x3000)
    mid.add_subregion(0x0, ms.mmio("y", 0x2000))
    root.add_subregion(0x0, top, priority=2)
    root.add_subregion(0x0, mid, priority=1)
    root.add_subregion(0x0, ms.mmio("z", 0x3000), priority=0)
    assert ranges(as_) == [
        (0x0, 0x1000, "x", 0x0),
        (0x1000, 0x2000, "y", 0x1000),
        (0x2000, 0x3000, "z", 0x2000),
    ]


# -- disabled regions (RENDER-2) ------------------------------------------------------------


def test_disabled_region_does_not_obscure_lower_siblings():
    """RENDER-2: a disabled region contributes nothing and hides nothing."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("low", 0x2000))
    high = ms.mmio("high", 0x1000)
    root.add_subregion(0x0, high, priority=1)
    high.set_enabled(False)
    assert ranges(as_) == [(0x0, 0x2000, "low", 0x0)]


def test_disabled_container_hides_its_enabled_children():
    """RENDER-2: rendering stops at a disabled region, children included."""
    ms, root, as_ = machine()
    box = ms.container("box", 0x2000)
    box.add_subregion(0x0, ms.mmio("child", 0x1000))
    root.add_subregion(0x0, box, priority=1)
    root.add_subregion(0x4000, ms.mmio("other", 0x1000))
    box.set_enabled(False)
    assert ranges(as_) == [(0x4000, 0x5000, "other", 0x0)]


def test_disabled_alias_target_vanishes_from_every_alias():
    """RENDER-2: disabling the target hides it through all aliases; siblings show through."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    root.add_subregion(0x0, ms.alias("a", ram, 0, 0x1000), priority=1)
    root.add_subregion(0x8000, ms.alias("b", ram, 0, 0x1000), priority=1)
    root.add_subregion(0x0, ms.mmio("under", 0x1000))
    ram.set_enabled(False)
    assert ranges(as_) == [(0x0, 0x1000, "under", 0x0)]


def test_disabled_alias_renders_nothing():
    """RENDER-2 applies to the alias itself."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    window = ms.alias("window", ram, 0, 0x1000)
    root.add_subregion(0x0, window)
    root.add_subregion(0x4000, ms.mmio("other", 0x1000))
    window.set_enabled(False)
    assert ranges(as_) == [(0x4000, 0x5000, "other", 0x0)]


# -- holes and terminating regions (RENDER-3, RENDER-4, REGION-5) ---------------------------


def test_pure_container_leaves_holes_for_lower_priority_siblings():
    """RENDER-3."""
    ms, root, as_ = machine()
    box = ms.container("box", 0x4000)
    box.add_subregion(0x1000, ms.mmio("dev", 0x1000))
    root.add_subregion(0x0, box, priority=1)
    root.add_subregion(0x0, ms.ram("ram", 0x8000))
    assert ranges(as_) == [
        (0x0, 0x1000, "ram", 0x0),
        (0x1000, 0x2000, "dev", 0x0),
        (0x2000, 0x8000, "ram", 0x2000),
    ]


def test_terminating_region_with_children_fills_its_whole_span():
    """RENDER-4: a RAM with a child hides every lower-priority sibling across its span."""
    ms, root, as_ = machine()
    big = ms.ram("big", 0x4000)
    big.add_subregion(0x1000, ms.mmio("small", 0x1000))
    root.add_subregion(0x0, big, priority=1)
    root.add_subregion(0x0, ms.ram("low", 0x8000))
    assert ranges(as_) == [
        (0x0, 0x1000, "big", 0x0),
        (0x1000, 0x2000, "small", 0x0),
        (0x2000, 0x4000, "big", 0x2000),
        (0x4000, 0x8000, "low", 0x4000),
    ]


def test_terminating_region_children_are_clipped_to_its_span():
    """RENDER-4, RENDER-6: a child straddling its parent's end is cut at the parent's end."""
    ms, root, as_ = machine()
    big = ms.mmio("big", 0x4000)
    big.add_subregion(0x3800, ms.mmio("tail", 0x1000))
    root.add_subregion(0x10000, big)
    assert ranges(as_) == [(0x10000, 0x13800, "big", 0x0), (0x13800, 0x14000, "tail", 0x0)]


def test_reservation_hides_what_is_below():
    """REGION-5: an MMIO region without ops is terminating and occupies its range."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.ram("ram", 0x4000, data=b"\x11" * 0x4000))
    root.add_subregion(0x1000, ms.mmio("reserved", 0x1000), priority=1)
    assert ranges(as_) == [
        (0x0, 0x1000, "ram", 0x0),
        (0x1000, 0x2000, "reserved", 0x0),
        (0x2000, 0x4000, "ram", 0x2000),
    ]


def test_reservation_answers_like_unassigned_memory():
    """HOLE-2: reads of a reservation give 0 with MEMTX_DECODE_ERROR."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.ram("ram", 0x4000, data=b"\x11" * 0x4000))
    root.add_subregion(0x1000, ms.mmio("reserved", 0x1000), priority=1)
    assert as_.read(0x1000, 1) == (b"\x00", MemTxResult.DECODE_ERROR)
    assert as_.read(0x0FFF, 1) == (b"\x11", MemTxResult.OK)


def test_empty_pure_container_does_not_hide_what_is_below():
    """RENDER-3 (contrast with REGION-5): a pure container without children is all holes."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.ram("ram", 0x4000))
    root.add_subregion(0x1000, ms.container("empty", 0x1000), priority=1)
    assert ranges(as_) == [(0x0, 0x4000, "ram", 0x0)]


# -- aliases (RENDER-5) ---------------------------------------------------------------------


def test_alias_placement_ignores_the_target_addr():
    """RENDER-5: target offset alias_offset lands at the alias's start, whatever target.addr is."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    ms.container("elsewhere", 0x10000).add_subregion(0x5000, ram)
    root.add_subregion(0x1000, ms.alias("window", ram, 0x100, 0x200))
    assert ranges(as_) == [(0x1000, 0x1200, "ram", 0x100)]


def test_alias_placement_ignores_the_target_container_enabled_state():
    """RENDER-5: only the target's own enabled flag counts, not its container's."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    elsewhere = ms.container("elsewhere", 0x10000)
    elsewhere.add_subregion(0x5000, ram)
    elsewhere.set_enabled(False)
    root.add_subregion(0x1000, ms.alias("window", ram, 0x0, 0x1000))
    assert ranges(as_) == [(0x1000, 0x2000, "ram", 0x0)]


def test_alias_precedence_uses_the_alias_priority_not_the_target_priority():
    """RENDER-5: the target's priority is ignored; the alias competes with its own."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    ms.container("elsewhere", 0x10000).add_subregion(0x0, ram, priority=5)
    root.add_subregion(0x0, ms.mmio("dev", 0x1000), priority=1)
    root.add_subregion(0x0, ms.alias("window", ram, 0x0, 0x1000), priority=0)
    assert ranges(as_) == [(0x0, 0x1000, "dev", 0x0)]


def test_mapped_target_also_shows_at_its_own_place():
    """RENDER-5: an alias adds a second view; the target stays visible where it is mapped."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    root.add_subregion(0x5000, ram)
    root.add_subregion(0x1000, ms.alias("window", ram, 0x800, 0x800))
    assert ranges(as_) == [(0x1000, 0x1800, "ram", 0x800), (0x5000, 0x6000, "ram", 0x0)]


def test_alias_is_clipped_to_the_target_size():
    """RENDER-5: an alias larger than what remains of its target shows only the target."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    root.add_subregion(0x10000, ms.alias("window", ram, 0x800, 0x2000))
    assert ranges(as_) == [(0x10000, 0x10800, "ram", 0x800)]


def test_alias_window_is_clipped_to_the_alias_size():
    """RENDER-5, RENDER-6: the alias's own span clips the target."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x10000)
    root.add_subregion(0x0, ms.alias("window", ram, 0x4000, 0x100))
    root.add_subregion(0x8000, ms.mmio("other", 0x100))
    assert ranges(as_) == [(0x0, 0x100, "ram", 0x4000), (0x8000, 0x8100, "other", 0x0)]


def test_alias_honours_the_target_children_and_leaves_holes():
    """RENDER-3: an alias onto a pure container shows its children; its holes show siblings."""
    ms, root, as_ = machine()
    target = ms.container("target", 0x1000)
    target.add_subregion(0x100, ms.mmio("c", 0x100))
    root.add_subregion(0x4000, ms.alias("window", target, 0x0, 0x1000), priority=1)
    root.add_subregion(0x4000, ms.ram("low", 0x1000))
    assert ranges(as_) == [
        (0x4000, 0x4100, "low", 0x0),
        (0x4100, 0x4200, "c", 0x0),
        (0x4200, 0x5000, "low", 0x200),
    ]


def test_alias_onto_a_terminating_region_with_children():
    """RENDER-4: the target's children show through the alias, the target fills the rest."""
    ms, root, as_ = machine()
    target = ms.ram("target", 0x1000)
    target.add_subregion(0x800, ms.mmio("k", 0x100))
    root.add_subregion(0x0, ms.alias("window", target, 0x0, 0x1000))
    root.add_subregion(0x8000, ms.mmio("other", 0x100))
    assert ranges(as_) == [
        (0x0, 0x800, "target", 0x0),
        (0x800, 0x900, "k", 0x0),
        (0x900, 0x1000, "target", 0x900),
        (0x8000, 0x8100, "other", 0x0),
    ]


def test_alias_honours_the_target_flags():
    """RENDER-5, RENDER-8: a ROM seen through an alias is readonly; nonvolatile also propagates."""
    ms, root, as_ = machine()
    rom = ms.rom("rom", 0x1000)
    rom.set_nonvolatile(True)
    root.add_subregion(0x0, ms.alias("window", rom, 0x0, 0x1000))
    root.add_subregion(0x8000, ms.mmio("other", 0x100))
    assert flags(as_) == [(0x0, True, True, False), (0x8000, False, False, False)]


def test_alias_flags_propagate_into_the_target_ranges():
    """RENDER-8: readonly is OR-ed along root -> alias -> target."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    window = ms.alias("window", ram, 0x0, 0x1000)
    window.set_readonly(True)
    root.add_subregion(0x4000, window)
    root.add_subregion(0x8000, ram)
    assert flags(as_) == [(0x4000, True, False, False), (0x8000, False, False, False)]


def test_alias_of_an_alias_adds_both_offsets():
    """RENDER-5: each alias in a chain places its target at base - alias_offset."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    inner = ms.alias("inner", ram, 0x200, 0x800)
    root.add_subregion(0x0, ms.alias("outer", inner, 0x10, 0x100))
    assert ranges(as_) == [(0x0, 0x100, "ram", 0x210)]


def test_large_alias_offset_puts_the_target_base_below_zero():
    """RENDER-5: the target base becomes negative; parts before the window are cut."""
    ms, root, as_ = machine()
    target = ms.container("target", 0x10000)
    target.add_subregion(0x0, ms.ram("a", 0x1000))
    target.add_subregion(0x9000, ms.ram("b", 0x1000))
    root.add_subregion(0x1000, ms.alias("window", target, 0x8000, 0x4000))
    assert ranges(as_) == [(0x2000, 0x3000, "b", 0x0)]


def test_large_alias_offset_onto_a_leaf():
    """RENDER-5: offset_in_region stays correct with a negative target base."""
    ms, root, as_ = machine()
    big = ms.mmio("big", 0x20000)
    root.add_subregion(0x100, ms.alias("window", big, 0x18000, 0x1000))
    assert ranges(as_) == [(0x100, 0x1100, "big", 0x18000)]


def test_alias_offset_beyond_the_target_renders_nothing():
    """RENDER-5, RENDER-7: the window lies entirely past the target's end."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    root.add_subregion(0x0, ms.alias("window", ram, 0x2000, 0x1000))
    root.add_subregion(0x8000, ms.mmio("other", 0x100))
    assert ranges(as_) == [(0x8000, 0x8100, "other", 0x0)]


# -- clipping (RENDER-6) --------------------------------------------------------------------


def test_clipping_is_by_every_ancestor():
    """RENDER-6: the visible part is the intersection of all ancestors' spans."""
    ms, root, as_ = machine()
    outer = ms.container("outer", 0x3000)
    inner = ms.container("inner", 0x4000)
    inner.add_subregion(0x0, ms.mmio("leaf", 0x8000))
    outer.add_subregion(0x800, inner)
    root.add_subregion(0x1000, outer)
    assert ranges(as_) == [(0x1800, 0x4000, "leaf", 0x0)]


def test_subregion_outside_its_container_is_invisible():
    """RENDER-6, RENDER-7: nothing of a child beyond its container's size is rendered."""
    ms, root, as_ = machine()
    box = ms.container("box", 0x1000)
    box.add_subregion(0x1000, ms.mmio("beyond", 0x1000))
    box.add_subregion(0x0, ms.mmio("inside", 0x100))
    root.add_subregion(0x4000, box)
    assert ranges(as_) == [(0x4000, 0x4100, "inside", 0x0)]


def test_nothing_exists_beyond_two_to_the_64():
    """RENDER-6: the root clip is [0, 2**64); a region straddling it is cut there."""
    ms, root, as_ = machine()
    root.add_subregion(TWO64 - 0x1000, ms.mmio("top", 0x2000))
    assert ranges(as_) == [(TWO64 - 0x1000, TWO64, "top", 0x0)]


def test_container_whose_children_lie_beyond_two_to_the_64_renders_nothing():
    """RENDER-6: base arithmetic is i128 without wrap, so a child past 2**64 does not wrap to 0."""
    ms, root, as_ = machine()
    box = ms.container("box", TWO64)
    box.add_subregion(0x2000, ms.mmio("past", 0x1000))
    root.add_subregion(TWO64 - 0x1000, box)
    root.add_subregion(0x1000, ms.mmio("low", 0x1000))
    assert ranges(as_) == [(0x1000, 0x2000, "low", 0x0)]


def test_last_byte_of_the_address_space_is_reachable():
    """RENDER-6: an address-space range may end exactly at 2**64."""
    ms, root, as_ = machine()
    root.add_subregion(MASK64, ms.mmio("last", 0x1))
    root.add_subregion(0x0, ms.mmio("first", 0x1))
    assert ranges(as_) == [(0x0, 0x1, "first", 0x0), (MASK64, TWO64, "last", 0x0)]
    assert as_.flatview.lookup(MASK64).mr.name == "last"


# -- zero size (RENDER-7) -------------------------------------------------------------------


def test_zero_size_region_renders_nothing_and_hides_nothing():
    """RENDER-7, REGION-3."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("under", 0x2000))
    root.add_subregion(0x1000, ms.mmio("empty", 0x0), priority=1)
    assert ranges(as_) == [(0x0, 0x2000, "under", 0x0)]


def test_zero_size_container_hides_its_children():
    """RENDER-7: a zero-size container clips its children away."""
    ms, root, as_ = machine()
    box = ms.container("box", 0x0)
    box.add_subregion(0x0, ms.mmio("child", 0x1000))
    root.add_subregion(0x1000, box)
    root.add_subregion(0x4000, ms.mmio("other", 0x1000))
    assert ranges(as_) == [(0x4000, 0x5000, "other", 0x0)]


def test_zero_size_alias_renders_nothing():
    """RENDER-7."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.alias("window", ms.ram("ram", 0x1000), 0x0, 0x0))
    root.add_subregion(0x4000, ms.mmio("other", 0x1000))
    assert ranges(as_) == [(0x4000, 0x5000, "other", 0x0)]


def test_zero_size_ram_renders_nothing():
    """RENDER-7."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.ram("ram", 0x0))
    root.add_subregion(0x4000, ms.mmio("other", 0x1000))
    assert ranges(as_) == [(0x4000, 0x5000, "other", 0x0)]


# -- flatview_simplify (RENDER-12) ----------------------------------------------------------


def test_adjacent_aliases_onto_contiguous_ram_merge_into_one_range():
    """RENDER-12: adjacent, same region, contiguous offsets, equal flags -> one FlatRange."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x2000)
    root.add_subregion(0x4000, ms.alias("first", ram, 0x0, 0x1000))
    root.add_subregion(0x5000, ms.alias("second", ram, 0x1000, 0x1000))
    assert ranges(as_) == [(0x4000, 0x6000, "ram", 0x0)]


def test_chains_of_adjacent_aliases_merge_repeatedly():
    """RENDER-12: merging continues along the whole run."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x3000)
    for i in range(3):
        root.add_subregion(0x4000 + i * 0x1000, ms.alias(f"a{i}", ram, i * 0x1000, 0x1000))
    assert ranges(as_) == [(0x4000, 0x7000, "ram", 0x0)]


def test_adjacent_aliases_onto_non_contiguous_offsets_do_not_merge():
    """RENDER-12: offsets must continue each other."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x4000)
    root.add_subregion(0x4000, ms.alias("first", ram, 0x0, 0x1000))
    root.add_subregion(0x5000, ms.alias("second", ram, 0x2000, 0x1000))
    assert ranges(as_) == [(0x4000, 0x5000, "ram", 0x0), (0x5000, 0x6000, "ram", 0x2000)]


def test_aliases_with_a_gap_between_them_do_not_merge():
    """RENDER-12: the ranges must touch."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x2000)
    root.add_subregion(0x4000, ms.alias("first", ram, 0x0, 0x1000))
    root.add_subregion(0x5001, ms.alias("second", ram, 0x1000, 0x1000))
    assert ranges(as_) == [(0x4000, 0x5000, "ram", 0x0), (0x5001, 0x6001, "ram", 0x1000)]


def test_adjacent_ranges_of_different_regions_do_not_merge():
    """RENDER-12: the ranges must show the same region."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.ram("a", 0x1000))
    root.add_subregion(0x1000, ms.ram("b", 0x1000))
    assert ranges(as_) == [(0x0, 0x1000, "a", 0x0), (0x1000, 0x2000, "b", 0x0)]


@pytest.mark.parametrize("flag", ["readonly", "nonvolatile"])
def test_adjacent_aliases_with_different_flags_do_not_merge(flag):
    """RENDER-12: the flags must agree."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x2000)
    second = ms.alias("second", ram, 0x1000, 0x1000)
    getattr(second, f"set_{flag}")(True)
    root.add_subregion(0x4000, ms.alias("first", ram, 0x0, 0x1000))
    root.add_subregion(0x5000, second)
    assert ranges(as_) == [(0x4000, 0x5000, "ram", 0x0), (0x5000, 0x6000, "ram", 0x1000)]


def test_adjacent_aliases_with_equal_flags_merge():
    """RENDER-12: equal (not absent) flags are enough."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x2000)
    for i in range(2):
        alias = ms.alias(f"a{i}", ram, i * 0x1000, 0x1000)
        alias.set_readonly(True)
        root.add_subregion(0x4000 + i * 0x1000, alias)
    assert ranges(as_) == [(0x4000, 0x6000, "ram", 0x0)]
    assert flags(as_) == [(0x4000, True, False, False)]


@pytest.mark.parametrize("which", ["first", "second", "both"])
def test_unmergeable_ranges_do_not_merge(which):
    """RENDER-12: neither may be unmergeable."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x2000)
    first = ms.alias("first", ram, 0x0, 0x1000)
    second = ms.alias("second", ram, 0x1000, 0x1000)
    for alias in (first, second):
        if which in (alias.name, "both"):
            alias.set_unmergeable(True)
    root.add_subregion(0x4000, first)
    root.add_subregion(0x5000, second)
    assert ranges(as_) == [(0x4000, 0x5000, "ram", 0x0), (0x5000, 0x6000, "ram", 0x1000)]


def test_unmergeable_propagates_into_the_ranges():
    """RENDER-8: unmergeable is inherited like readonly."""
    ms, root, as_ = machine()
    box = ms.container("box", 0x2000)
    box.add_subregion(0x0, ms.ram("ram", 0x1000))
    box.set_unmergeable(True)
    root.add_subregion(0x1000, box)
    assert flags(as_) == [(0x1000, False, False, True)]


# -- flatview_root (RENDER-9 to RENDER-11) --------------------------------------------------


def two_child_root(ms):
    root = ms.container("system", TWO64)
    root.add_subregion(0x0, ms.ram("ram", 0x1000))
    root.add_subregion(0x10000, ms.mmio("dev", 0x100))
    return root


def test_address_spaces_with_the_same_root_share_one_flatview():
    """RENDER-10: views are cached per flatview root; both ASes get the same object."""
    ms = MemorySystem()
    root = two_child_root(ms)
    first = ms.address_space("first", root)
    second = ms.address_space("second", root)
    assert first.flatview is second.flatview
    assert first.flatview.root is root


def test_full_alias_root_shares_the_flatview_of_its_target():
    """RENDER-9: an alias at offset 0 covering its whole target is walked through."""
    ms = MemorySystem()
    root = two_child_root(ms)
    memory = ms.address_space("memory", root)
    dma = ms.address_space("dma", ms.alias("bus master", root, 0, TWO64))
    assert dma.flatview is memory.flatview
    assert dma.flatview.root is root


def test_container_with_one_child_at_zero_renders_from_the_child():
    """RENDER-9: a pure container whose only enabled child sits at 0 and fits is skipped."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x1000)
    wrapper = ms.container("wrapper", 0x10000)
    wrapper.add_subregion(0x0, ram)
    via_wrapper = ms.address_space("via wrapper", wrapper)
    direct = ms.address_space("direct", ram)
    assert via_wrapper.flatview.root is ram
    assert via_wrapper.flatview is direct.flatview
    assert ranges(via_wrapper) == [(0x0, 0x1000, "ram", 0x0)]


def test_disabled_siblings_do_not_prevent_reducing_to_the_single_enabled_child():
    """RENDER-9: only enabled children count."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x1000)
    off = ms.mmio("off", 0x100)
    off.set_enabled(False)
    wrapper = ms.container("wrapper", 0x10000)
    wrapper.add_subregion(0x0, ram)
    wrapper.add_subregion(0x2000, off)
    assert ms.address_space("as", wrapper).flatview.root is ram


def test_container_with_one_child_not_at_zero_is_its_own_root():
    """RENDER-9: the single child must sit at address 0."""
    ms = MemorySystem()
    wrapper = ms.container("wrapper", 0x10000)
    wrapper.add_subregion(0x1000, ms.ram("ram", 0x1000))
    as_ = ms.address_space("as", wrapper)
    assert as_.flatview.root is wrapper
    assert ranges(as_) == [(0x1000, 0x2000, "ram", 0x0)]


def test_container_smaller_than_its_single_child_is_its_own_root():
    """RENDER-9: the child must fit (container.size >= child.size), so the clip still applies."""
    ms = MemorySystem()
    wrapper = ms.container("wrapper", 0x800)
    wrapper.add_subregion(0x0, ms.ram("ram", 0x1000))
    as_ = ms.address_space("as", wrapper)
    assert as_.flatview.root is wrapper
    assert ranges(as_) == [(0x0, 0x800, "ram", 0x0)]


def test_alias_with_an_offset_is_its_own_root():
    """RENDER-9: only an alias with alias_offset 0 is walked through."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x2000)
    window = ms.alias("window", ram, 0x1000, 0x1000)
    as_ = ms.address_space("as", window)
    assert as_.flatview.root is window
    assert ranges(as_) == [(0x0, 0x1000, "ram", 0x1000)]


def test_alias_smaller_than_its_target_is_its_own_root():
    """RENDER-9: only an alias that covers its whole target is walked through."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x2000)
    window = ms.alias("window", ram, 0x0, 0x1000)
    as_ = ms.address_space("as", window)
    assert as_.flatview.root is window
    assert ranges(as_) == [(0x0, 0x1000, "ram", 0x0)]


def test_empty_container_root_gives_the_empty_view():
    """RENDER-9: a container with no enabled child renders nothing and has no root."""
    ms = MemorySystem()
    as_ = ms.address_space("as", ms.container("empty", TWO64))
    assert as_.flatview.ranges == []
    assert as_.flatview.root is None


def test_container_with_only_disabled_children_gives_the_empty_view():
    """RENDER-9."""
    ms = MemorySystem()
    box = ms.container("box", TWO64)
    child = ms.ram("ram", 0x1000)
    box.add_subregion(0x1000, child)
    child.set_enabled(False)
    as_ = ms.address_space("as", box)
    assert (as_.flatview.ranges, as_.flatview.root) == ([], None)


def test_disabled_root_gives_the_empty_view():
    """RENDER-9: a disabled root (or a region walked to) yields no view."""
    ms = MemorySystem()
    root = two_child_root(ms)
    as_ = ms.address_space("as", root)
    root.set_enabled(False)
    assert (as_.flatview.ranges, as_.flatview.root) == ([], None)


def test_disabled_full_alias_target_gives_the_empty_view():
    """RENDER-9: the walk reaches a disabled region."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x1000)
    ram.set_enabled(False)
    as_ = ms.address_space("as", ms.alias("window", ram, 0, 0x1000))
    assert (as_.flatview.ranges, as_.flatview.root) == ([], None)


def test_full_alias_root_renders_the_target_at_its_own_addr():
    """RENDER-11: rendering restarts at the target, so target.addr is added again."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x1000)
    ms.container("board", 0x10000).add_subregion(0x3000, ram)
    as_ = ms.address_space("as", ms.alias("window", ram, 0, 0x1000))
    assert ranges(as_) == [(0x3000, 0x4000, "ram", 0x0)]


def test_skipped_wrapper_readonly_flag_is_not_applied():
    """RENDER-11: rendering starts with all flags False at the reduced root."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x1000)
    window = ms.alias("window", ram, 0, 0x1000)
    window.set_readonly(True)
    as_ = ms.address_space("as", window)
    assert flags(as_) == [(0x0, False, False, False)]


def test_readonly_of_a_partial_alias_root_is_applied():
    """RENDER-11 (contrast): a root that is not skipped contributes its flags."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x2000)
    window = ms.alias("window", ram, 0, 0x1000)
    window.set_readonly(True)
    as_ = ms.address_space("as", window)
    assert flags(as_) == [(0x0, True, False, False)]


def test_shared_flatview_stays_shared_after_a_commit():
    """RENDER-10, TXN-4: the rebuild keeps one view per flatview root."""
    ms = MemorySystem()
    root = two_child_root(ms)
    memory = ms.address_space("memory", root)
    dma = ms.address_space("dma", ms.alias("bus master", root, 0, TWO64))
    root.add_subregion(0x20000, ms.mmio("new", 0x100))
    assert dma.flatview is memory.flatview
    assert ranges(memory)[-1] == (0x20000, 0x20100, "new", 0x0)


def test_root_that_becomes_reducible_after_a_change_renders_from_the_child():
    """RENDER-10: the flatview root is recomputed at every commit."""
    ms = MemorySystem()
    root = two_child_root(ms)
    as_ = ms.address_space("as", root)
    dev = root.subregions[0]
    assert dev.name == "dev"
    dev.set_enabled(False)
    assert as_.flatview.root.name == "ram"
    assert ranges(as_) == [(0x0, 0x1000, "ram", 0x0)]


# -- lookup (RENDER-13) -----------------------------------------------------------------------


def build_many(count):
    ms, root, as_ = machine()
    with ms.transaction():
        for i in range(count):
            root.add_subregion(i * 0x2000, ms.mmio(f"dev{i}", 0x1000))
    return as_


def test_lookup_finds_every_range_of_a_large_view():
    """RENDER-13: the range containing addr, at its first and last byte."""
    count = 2000
    as_ = build_many(count)
    fv = as_.flatview
    assert len(fv.ranges) == count
    for i in range(0, count, 7):
        for addr in (i * 0x2000, i * 0x2000 + 0x0FFF):
            fr = fv.lookup(addr)
            assert (fr.mr.name, fr.start, fr.end) == (f"dev{i}", i * 0x2000, i * 0x2000 + 0x1000)


def test_lookup_of_a_hole_in_a_large_view_finds_nothing():
    """RENDER-13: no range -> unassigned (None)."""
    count = 2000
    as_ = build_many(count)
    fv = as_.flatview
    for i in range(0, count, 7):
        assert fv.lookup(i * 0x2000 + 0x1000) is None
        assert fv.lookup(i * 0x2000 + 0x1FFF) is None
    assert fv.lookup(count * 0x2000) is None
    assert fv.lookup(MASK64) is None


def test_access_to_a_hole_is_unassigned():
    """RENDER-13, HOLE-1: a hole reads 0 with MEMTX_DECODE_ERROR."""
    as_ = build_many(16)
    assert as_.read(0x1000, 1) == (b"\x00", MemTxResult.DECODE_ERROR)


def test_ranges_of_a_large_view_are_sorted_and_disjoint():
    """RENDER-13: a FlatView is a sorted, non-overlapping list."""
    ms, root, as_ = machine()
    # Overlapping regions at several priorities, added in a scrambled order.
    with ms.transaction():
        for i in range(500):
            j = (i * 7919) % 500
            root.add_subregion(j * 0x800, ms.mmio(f"r{j}", 0x1000), priority=j % 3)
    starts_ends = [(fr.start, fr.end) for fr in as_.flatview.ranges]
    assert all(s < e for s, e in starts_ends)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(starts_ends))
    assert starts_ends[0][0] == 0
    assert starts_ends[-1][1] == 499 * 0x800 + 0x1000
