"""Memory listeners: registration replay, topology diff, call order, what marks the topology
dirty and which changes replace ranges (docs/memory-rules.md: LISTENER rules, TREE-9, TXN-4).

Call logs are worked out from those rules, not captured from the model.
"""

from __future__ import annotations

from mmiobus.memory import MemoryListener, MemoryRegionOps, MemorySystem

TWO64 = 1 << 64


class Recorder(MemoryListener):
    """Appends every callback to a log shared with other recorders.

    Region callbacks are logged as ``(label, kind, start, end, region name, offset)``;
    ``begin``/``commit`` as ``(label, kind)``. The sections themselves go to ``sections``.
    """

    def __init__(self, log: list, label: str, priority: int = 0) -> None:
        self.log = log
        self.label = label
        self.priority = priority
        self.sections: list = []

    def begin(self) -> None:
        self.log.append((self.label, "begin"))

    def commit(self) -> None:
        self.log.append((self.label, "commit"))

    def _region(self, kind, section) -> None:
        start = section.offset_within_address_space
        self.sections.append((kind, section))
        entry = (self.label, kind, start, start + section.size, section.mr.name)
        self.log.append((*entry, section.offset_within_region))

    def region_add(self, section) -> None:
        self._region("add", section)

    def region_del(self, section) -> None:
        self._region("del", section)

    def region_nop(self, section) -> None:
        self._region("nop", section)


class Exploding(Recorder):
    """Records, then raises from every callback."""

    def begin(self) -> None:
        super().begin()
        raise RuntimeError("begin")

    def commit(self) -> None:
        super().commit()
        raise RuntimeError("commit")

    def _region(self, kind, section) -> None:
        super()._region(kind, section)
        raise RuntimeError(kind)


def machine():
    """A memory system with an empty 2**64 ``system`` container and its ``memory`` AS."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    return ms, root, ms.address_space("memory", root)


def listen(as_, label="L", priority=0, log=None):
    """Register a Recorder on ``as_`` and forget the registration replay."""
    log = [] if log is None else log
    listener = Recorder(log, label, priority)
    as_.register_listener(listener)
    log.clear()
    return listener


# -- registration (LISTENER-2, LISTENER-3) ----------------------------------------------------


def test_registration_replays_the_current_view_in_address_order():
    """LISTENER-2: begin, region_add per range in address order, commit."""
    ms, root, as_ = machine()
    root.add_subregion(0x8000, ms.mmio("b", 0x1000))
    root.add_subregion(0x1000, ms.mmio("a", 0x1000))
    log: list = []
    as_.register_listener(Recorder(log, "L"))
    assert log == [
        ("L", "begin"),
        ("L", "add", 0x1000, 0x2000, "a", 0),
        ("L", "add", 0x8000, 0x9000, "b", 0),
        ("L", "commit"),
    ]


def test_registration_on_an_empty_view_is_begin_and_commit():
    """LISTENER-2: no ranges, no region_add."""
    _, _, as_ = machine()
    log: list = []
    as_.register_listener(Recorder(log, "L"))
    assert log == [("L", "begin"), ("L", "commit")]


def test_registration_replays_only_to_the_new_listener():
    """LISTENER-2: existing listeners see nothing."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    old = listen(as_, "old")
    as_.register_listener(Recorder(old.log, "new"))
    assert [entry[0] for entry in old.log] == ["new", "new", "new"]


def test_registration_replays_the_sections_flags():
    """LISTENER-8: readonly/nonvolatile/unmergeable come from the FlatRange."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.rom("rom", 0x1000))
    root.add_subregion(0x4000, ms.ram("ram", 0x1000))
    listener = Recorder([], "L")
    as_.register_listener(listener)
    assert [(s.mr.name, s.readonly) for _, s in listener.sections] == [
        ("rom", True),
        ("ram", False),
    ]


def test_unregister_replays_region_del_for_every_range():
    """LISTENER-3: begin, region_del per range in address order, commit."""
    ms, root, as_ = machine()
    root.add_subregion(0x8000, ms.mmio("b", 0x1000))
    root.add_subregion(0x1000, ms.mmio("a", 0x1000))
    listener = listen(as_)
    as_.unregister_listener(listener)
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x1000, 0x2000, "a", 0),
        ("L", "del", 0x8000, 0x9000, "b", 0),
        ("L", "commit"),
    ]


def test_unregistered_listener_hears_nothing_more():
    """LISTENER-3: removal follows the teardown replay."""
    ms, root, as_ = machine()
    listener = listen(as_)
    as_.unregister_listener(listener)
    listener.log.clear()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    assert listener.log == []


# -- topology change (LISTENER-4 to LISTENER-8) ---------------------------------------------


def test_adding_a_region_is_begin_add_commit():
    """LISTENER-4: a new range is a region_add between begin and commit."""
    ms, root, as_ = machine()
    listener = listen(as_)
    root.add_subregion(0x1000, ms.mmio("a", 0x1000))
    assert listener.log == [
        ("L", "begin"),
        ("L", "add", 0x1000, 0x2000, "a", 0),
        ("L", "commit"),
    ]


def test_unchanged_ranges_get_region_nop():
    """LISTENER-4: a range equal in old and new view is reported as region_nop."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    listener = listen(as_)
    root.add_subregion(0x4000, ms.mmio("b", 0x1000))
    assert listener.log == [
        ("L", "begin"),
        ("L", "nop", 0x0, 0x1000, "a", 0),
        ("L", "add", 0x4000, 0x5000, "b", 0),
        ("L", "commit"),
    ]


def test_all_deletions_come_before_any_addition():
    """LISTENER-4: the deletion pass runs completely before the adding pass."""
    ms, root, as_ = machine()
    a = ms.mmio("a", 0x1000)
    c = ms.mmio("c", 0x1000)
    root.add_subregion(0x0, a)
    root.add_subregion(0x8000, c)
    listener = listen(as_)
    with ms.transaction():
        root.del_subregion(a)
        root.del_subregion(c)
        root.add_subregion(0x4000, ms.mmio("b", 0x1000))
        root.add_subregion(0x2000, ms.mmio("z", 0x1000))
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x0, 0x1000, "a", 0),
        ("L", "del", 0x8000, 0x9000, "c", 0),
        ("L", "add", 0x2000, 0x3000, "z", 0),
        ("L", "add", 0x4000, 0x5000, "b", 0),
        ("L", "commit"),
    ]


def test_moved_range_is_del_then_add():
    """LISTENER-5: a changed range is del(old) + add(new), never a modification."""
    ms, root, as_ = machine()
    a = ms.mmio("a", 0x1000)
    root.add_subregion(0x1000, a)
    listener = listen(as_)
    a.set_address(0x3000)
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x1000, 0x2000, "a", 0),
        ("L", "add", 0x3000, 0x4000, "a", 0),
        ("L", "commit"),
    ]


def test_resized_range_at_the_same_start_is_del_then_add():
    """LISTENER-5: same start, different size -> not flatrange_equal -> del + add."""
    ms, root, as_ = machine()
    a = ms.mmio("a", 0x1000)
    root.add_subregion(0x1000, a)
    listener = listen(as_)
    a.set_size(0x2000)
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x1000, 0x2000, "a", 0),
        ("L", "add", 0x1000, 0x3000, "a", 0),
        ("L", "commit"),
    ]


def test_alias_offset_change_is_del_then_add():
    """LISTENER-5: range identity includes offset_in_region."""
    ms, root, as_ = machine()
    window = ms.alias("window", ms.ram("ram", 0x4000), 0x0, 0x1000)
    root.add_subregion(0x1000, window)
    listener = listen(as_)
    window.set_alias_offset(0x2000)
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x1000, 0x2000, "ram", 0x0),
        ("L", "add", 0x1000, 0x2000, "ram", 0x2000),
        ("L", "commit"),
    ]


def test_diffs_are_on_merged_ranges():
    """LISTENER-6: a small region mapped into the middle of a big RAM range splits it:
    del(big), add(left), add(small), add(right)."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.ram("big", 0x3000))
    listener = listen(as_)
    root.add_subregion(0x1000, ms.mmio("small", 0x1000), priority=1)
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x0, 0x3000, "big", 0x0),
        ("L", "add", 0x0, 0x1000, "big", 0x0),
        ("L", "add", 0x1000, 0x2000, "small", 0x0),
        ("L", "add", 0x2000, 0x3000, "big", 0x2000),
        ("L", "commit"),
    ]


def test_removing_the_small_region_merges_the_big_range_again():
    """LISTENER-6: del(left), del(small), del(right), then add(big) as one range."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.ram("big", 0x3000))
    small = ms.mmio("small", 0x1000)
    root.add_subregion(0x1000, small, priority=1)
    listener = listen(as_)
    root.del_subregion(small)
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x0, 0x1000, "big", 0x0),
        ("L", "del", 0x1000, 0x2000, "small", 0x0),
        ("L", "del", 0x2000, 0x3000, "big", 0x2000),
        ("L", "add", 0x0, 0x3000, "big", 0x0),
        ("L", "commit"),
    ]


def test_adjacent_aliases_are_reported_as_one_merged_range():
    """LISTENER-6, RENDER-12: listeners only ever see merged ranges."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x2000)
    listener = listen(as_)
    with ms.transaction():
        root.add_subregion(0x4000, ms.alias("first", ram, 0x0, 0x1000))
        root.add_subregion(0x5000, ms.alias("second", ram, 0x1000, 0x1000))
    assert listener.log == [
        ("L", "begin"),
        ("L", "add", 0x4000, 0x6000, "ram", 0x0),
        ("L", "commit"),
    ]


def test_commit_order_across_address_spaces():
    """LISTENER-4: begin on every listener (global list), then per AS in
    creation order its dels and nops/adds, then commit on every listener."""
    ms = MemorySystem()
    sys_root = ms.container("system", TWO64)
    io_root = ms.container("io", 0x10000)
    sys_root.add_subregion(0x0, ms.mmio("old", 0x1000))
    io_root.add_subregion(0x60, ms.mmio("kbd", 0x1))
    memory = ms.address_space("memory", sys_root)
    io = ms.address_space("I/O", io_root)
    log: list = []
    listen(io, "io-listener", log=log)
    listen(memory, "mem-listener", log=log)
    with ms.transaction():
        sys_root.del_subregion(sys_root.subregions[0])
        sys_root.add_subregion(0x2000, ms.mmio("new", 0x1000))
    assert log == [
        ("io-listener", "begin"),
        ("mem-listener", "begin"),
        ("mem-listener", "del", 0x0, 0x1000, "old", 0),
        ("mem-listener", "add", 0x2000, 0x3000, "new", 0),
        ("io-listener", "nop", 0x60, 0x61, "kbd", 0),
        ("io-listener", "commit"),
        ("mem-listener", "commit"),
    ]


def test_untouched_address_space_gets_region_nop_for_each_range():
    """LISTENER-7: a dirty commit rebuilds every view; an unchanged AS sees begin, nops, commit."""
    ms, root, _ = machine()
    io_root = ms.container("io", 0x10000)
    io_root.add_subregion(0x60, ms.mmio("data", 0x1))
    io_root.add_subregion(0x64, ms.mmio("status", 0x1))
    io = ms.address_space("I/O", io_root)
    listener = listen(io)
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    assert listener.log == [
        ("L", "begin"),
        ("L", "nop", 0x60, 0x61, "data", 0),
        ("L", "nop", 0x64, 0x65, "status", 0),
        ("L", "commit"),
    ]


def test_change_to_a_region_outside_every_address_space_still_commits():
    """TREE-9 (the mark is coarse): reachability is not checked; listeners see nops."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    listener = listen(as_)
    ms.container("floating", 0x1000).add_subregion(0x0, ms.mmio("b", 0x10))
    assert listener.log == [
        ("L", "begin"),
        ("L", "nop", 0x0, 0x1000, "a", 0),
        ("L", "commit"),
    ]


# -- listener priority ------------------------------------------------------------------------


def two_listeners():
    """Listeners of priority 1 and 2 on one AS, registered high-priority first."""
    ms, root, as_ = machine()
    log: list = []
    listen(as_, "p2", priority=2, log=log)
    listen(as_, "p1", priority=1, log=log)
    return ms, root, as_, log


def test_region_add_goes_to_listeners_in_ascending_priority():
    """LISTENER-1: forward = ascending priority, for begin/add/commit."""
    ms, root, _, log = two_listeners()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    assert log == [
        ("p1", "begin"),
        ("p2", "begin"),
        ("p1", "add", 0x0, 0x1000, "a", 0),
        ("p2", "add", 0x0, 0x1000, "a", 0),
        ("p1", "commit"),
        ("p2", "commit"),
    ]


def test_region_del_goes_to_listeners_in_descending_priority():
    """LISTENER-1: region_del is called in reverse order."""
    ms, root, _, log = two_listeners()
    a = ms.mmio("a", 0x1000)
    root.add_subregion(0x0, a)
    log.clear()
    root.del_subregion(a)
    assert log == [
        ("p1", "begin"),
        ("p2", "begin"),
        ("p2", "del", 0x0, 0x1000, "a", 0),
        ("p1", "del", 0x0, 0x1000, "a", 0),
        ("p1", "commit"),
        ("p2", "commit"),
    ]


def test_region_nop_goes_to_listeners_in_ascending_priority():
    """LISTENER-1: region_nop is forward."""
    ms, root, _, log = two_listeners()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    log.clear()
    ms.container("floating", 0x10).set_size(0x20)
    assert log == [
        ("p1", "begin"),
        ("p2", "begin"),
        ("p1", "nop", 0x0, 0x1000, "a", 0),
        ("p2", "nop", 0x0, 0x1000, "a", 0),
        ("p1", "commit"),
        ("p2", "commit"),
    ]


def test_equal_priority_listeners_are_called_in_registration_order():
    """LISTENER-1: a new listener goes after existing ones of equal priority."""
    ms, root, as_ = machine()
    log: list = []
    listen(as_, "first", log=log)
    listen(as_, "second", log=log)
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    assert [entry[0] for entry in log if entry[1] == "add"] == ["first", "second"]


def test_begin_and_commit_follow_the_global_priority_order_across_address_spaces():
    """LISTENER-4: begin/commit go to all listeners in ascending priority, whatever AS."""
    ms, root, memory = machine()
    io = ms.address_space("I/O", ms.container("io", 0x10000))
    log: list = []
    listen(memory, "mem-p5", priority=5, log=log)
    listen(io, "io-p1", priority=1, log=log)
    listen(memory, "mem-p3", priority=3, log=log)
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    assert [entry[0] for entry in log if entry[1] == "begin"] == ["io-p1", "mem-p3", "mem-p5"]
    assert [entry[0] for entry in log if entry[1] == "commit"] == ["io-p1", "mem-p3", "mem-p5"]


# -- what marks the topology dirty (TREE-8, TREE-9) -------------------------------------------


def test_commit_that_changed_nothing_calls_no_listener():
    """TXN-4: without the dirty flag there is no begin/commit at all."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    listener = listen(as_)
    with ms.transaction():
        pass
    ms.begin()
    ms.commit()
    assert listener.log == []


def test_setters_with_unchanged_values_call_no_listener():
    """TREE-8: every setter is a no-op when the value is unchanged."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    window = ms.alias("window", ram, 0x100, 0x100)
    root.add_subregion(0x0, ram)
    root.add_subregion(0x8000, window)
    listener = listen(as_)
    ram.set_address(0x0)
    ram.set_priority(0)
    ram.set_enabled(True)
    ram.set_size(0x1000)
    ram.set_readonly(False)
    ram.set_nonvolatile(False)
    ram.set_unmergeable(False)
    window.set_alias_offset(0x100)
    assert listener.log == []


def test_adding_a_disabled_subregion_calls_no_listener():
    """TREE-9: dirty only if container.enabled and sub.enabled."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    listener = listen(as_)
    sub = ms.mmio("off", 0x1000)
    sub.set_enabled(False)
    listener.log.clear()  # set_enabled always commits (checked separately)
    root.add_subregion(0x4000, sub)
    assert listener.log == []


def test_adding_into_a_disabled_container_calls_no_listener():
    """TREE-9."""
    ms, root, as_ = machine()
    box = ms.container("box", 0x1000)
    box.set_enabled(False)
    root.add_subregion(0x0, box)
    root.add_subregion(0x4000, ms.mmio("a", 0x1000))
    listener = listen(as_)
    box.add_subregion(0x0, ms.mmio("inner", 0x100))
    assert listener.log == []


def test_removing_a_disabled_subregion_calls_no_listener():
    """TREE-9."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    off = ms.mmio("off", 0x1000)
    root.add_subregion(0x4000, off)
    off.set_enabled(False)
    listener = listen(as_)
    root.del_subregion(off)
    assert listener.log == []


def test_moving_a_disabled_subregion_calls_no_listener():
    """TREE-9, TREE-7: set_address is dirty via del/add, which skip disabled regions."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    off = ms.mmio("off", 0x1000)
    root.add_subregion(0x4000, off)
    off.set_enabled(False)
    listener = listen(as_)
    off.set_address(0x8000)
    assert listener.log == []


def test_flag_change_on_a_disabled_region_calls_no_listener():
    """TREE-9: set_readonly/set_alias_offset mark dirty only if the region is enabled."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    window = ms.alias("window", ms.ram("ram", 0x4000), 0x0, 0x1000)
    root.add_subregion(0x4000, window)
    window.set_enabled(False)
    listener = listen(as_)
    window.set_readonly(True)
    window.set_alias_offset(0x1000)
    assert listener.log == []


def test_set_enabled_always_commits_even_in_a_disabled_container():
    """TREE-9: set_enabled marks dirty unconditionally; the view is unchanged, so only nops."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    box = ms.container("box", 0x1000)
    inner = ms.mmio("inner", 0x100)
    box.add_subregion(0x0, inner)
    root.add_subregion(0x4000, box)
    box.set_enabled(False)
    listener = listen(as_)
    inner.set_enabled(False)
    assert listener.log == [
        ("L", "begin"),
        ("L", "nop", 0x0, 0x1000, "a", 0),
        ("L", "commit"),
    ]


def test_set_size_always_commits_even_for_an_unmapped_region():
    """REGION-2, TREE-9: set_size marks dirty unconditionally."""
    ms, root, as_ = machine()
    root.add_subregion(0x0, ms.mmio("a", 0x1000))
    listener = listen(as_)
    loose = ms.mmio("loose", 0x1000)
    loose.set_enabled(False)
    listener.log.clear()
    loose.set_size(0x2000)
    assert listener.log == [
        ("L", "begin"),
        ("L", "nop", 0x0, 0x1000, "a", 0),
        ("L", "commit"),
    ]


def test_enabling_a_disabled_subregion_adds_its_range():
    """TREE-9: the deferred change shows up when the region is enabled."""
    ms, root, as_ = machine()
    sub = ms.mmio("sub", 0x1000)
    sub.set_enabled(False)
    root.add_subregion(0x4000, sub)
    listener = listen(as_)
    sub.set_enabled(True)
    assert listener.log == [
        ("L", "begin"),
        ("L", "add", 0x4000, 0x5000, "sub", 0),
        ("L", "commit"),
    ]


# -- attribute changes are range replacements (LISTENER-5) --------------------------------


def test_romd_toggle_is_region_del_then_region_add():
    """LISTENER-5, ROM-3: romd_mode is part of FlatRange equality."""
    ms, root, as_ = machine()
    flash = ms.romd("flash", 0x1000, ops=MemoryRegionOps())
    root.add_subregion(0x1000, flash)
    listener = listen(as_)
    flash.set_romd(False)
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x1000, 0x2000, "flash", 0),
        ("L", "add", 0x1000, 0x2000, "flash", 0),
        ("L", "commit"),
    ]


def test_readonly_change_is_region_del_then_region_add():
    """LISTENER-5: readonly is part of FlatRange equality; the new section carries the new flag."""
    ms, root, as_ = machine()
    box = ms.container("box", 0x2000)
    box.add_subregion(0x0, ms.ram("ram", 0x1000))
    root.add_subregion(0x4000, box)
    listener = listen(as_)
    listener.sections.clear()
    box.set_readonly(True)
    assert listener.log == [
        ("L", "begin"),
        ("L", "del", 0x4000, 0x5000, "ram", 0),
        ("L", "add", 0x4000, 0x5000, "ram", 0),
        ("L", "commit"),
    ]
    assert [(kind, s.readonly) for kind, s in listener.sections] == [
        ("del", False),
        ("add", True),
    ]


def test_nonvolatile_change_is_region_del_then_region_add():
    """LISTENER-5."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    root.add_subregion(0x4000, ram)
    listener = listen(as_)
    listener.sections.clear()
    ram.set_nonvolatile(True)
    assert [(kind, s.nonvolatile) for kind, s in listener.sections] == [
        ("del", False),
        ("add", True),
    ]


def test_unmergeable_change_is_region_del_then_region_add():
    """LISTENER-5."""
    ms, root, as_ = machine()
    ram = ms.ram("ram", 0x1000)
    root.add_subregion(0x4000, ram)
    listener = listen(as_)
    listener.sections.clear()
    ram.set_unmergeable(True)
    assert [(kind, s.unmergeable) for kind, s in listener.sections] == [
        ("del", False),
        ("add", True),
    ]


# -- robustness -------------------------------------------------------------------------------


def test_a_raising_listener_does_not_stop_the_others():
    """A listener that raises is skipped for that call; every other listener is called."""
    ms, root, as_ = machine()
    log: list = []
    bad = Exploding(log, "bad", priority=0)
    as_.register_listener(bad)
    listen(as_, "good", priority=1, log=log)
    a = ms.mmio("a", 0x1000)
    root.add_subregion(0x0, a)
    root.del_subregion(a)
    assert log == [
        ("bad", "begin"),
        ("good", "begin"),
        ("bad", "add", 0x0, 0x1000, "a", 0),
        ("good", "add", 0x0, 0x1000, "a", 0),
        ("bad", "commit"),
        ("good", "commit"),
        ("bad", "begin"),
        ("good", "begin"),
        ("good", "del", 0x0, 0x1000, "a", 0),
        ("bad", "del", 0x0, 0x1000, "a", 0),
        ("bad", "commit"),
        ("good", "commit"),
    ]


def test_a_raising_listener_does_not_stop_the_view_from_being_installed():
    """The new view is published even if a listener fails."""
    ms, root, as_ = machine()
    as_.register_listener(Exploding([], "bad"))
    root.add_subregion(0x0, ms.ram("ram", 0x1000, data=b"\x33"))
    assert as_.read(0x0, 1).data == b"\x33"
