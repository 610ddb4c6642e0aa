"""The text of `info mtree` (tree) and `info mtree -f` (flat), line for line.

The rules are MTREE-1 to MTREE-10 of docs/memory-rules.md.
"""

from __future__ import annotations

from mmiobus.memory import MemorySystem, mtree

TWO64 = 1 << 64


def test_tree_lines_use_16_hex_digits_inclusive_end_and_signed_priority():
    """MTREE-1: `START-END (prio P, TYPE): NAME`, END = start + size - 1."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    root.add_subregion(0x1000, ms.ram("ram", 0x1000), priority=-3)
    ms.address_space("memory", root)
    assert mtree(ms) == (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000001000-0000000000001fff (prio -3, ram): ram\n"
        "\n"
    )


def test_type_strings_follow_qemu_7_2():
    """MTREE-2: i/o for containers and MMIO, ram, rom, romd (in ROMD mode only); an alias shows its
    target's type."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    ram = ms.ram("ram", 0x10)
    flash = ms.romd("flash", 0x10)
    root.add_subregion(0x00, ram)
    root.add_subregion(0x10, ms.rom("rom", 0x10))
    root.add_subregion(0x20, flash)
    root.add_subregion(0x30, ms.mmio("dev", 0x10))
    root.add_subregion(0x40, ms.alias("win", ram, 0, 0x10))
    ms.address_space("memory", root)
    lines = mtree(ms).splitlines()
    assert "(prio 0, ram): ram" in lines[2]
    assert "(prio 0, rom): rom" in lines[3]
    assert "(prio 0, romd): flash" in lines[4]
    assert "(prio 0, i/o): dev" in lines[5]
    assert "(prio 0, ram): alias win @ram" in lines[6]
    flash.set_romd(False)
    assert "(prio 0, i/o): flash" in mtree(ms)


def test_children_print_by_address_then_priority_not_in_render_order():
    """MTREE-3: sorted by addr, then priority descending, then list order (newest first)."""
    ms = MemorySystem()
    root = ms.container("system", 0x100)
    root.add_subregion(0x20, ms.mmio("late", 0x10), priority=5)
    root.add_subregion(0x00, ms.mmio("low-prio", 0x10), priority=0)
    root.add_subregion(0x00, ms.mmio("high-prio", 0x10), priority=1)
    root.add_subregion(0x00, ms.mmio("older", 0x10), priority=0)
    root.add_subregion(0x00, ms.mmio("newer", 0x10), priority=0)
    ms.address_space("memory", root)
    names = [line.split(": ")[-1] for line in mtree(ms).splitlines()[2:-1]]
    assert names == ["high-prio", "newer", "older", "low-prio", "late"]


def test_disabled_regions_are_hidden_without_d_but_their_children_print():
    """MTREE-4: a disabled region's line needs -D; its enabled children print either way, at their
    own indentation."""
    ms = MemorySystem()
    root = ms.container("system", 0x1000)
    pm = ms.container("pm", 0x100)
    pm.add_subregion(0x4, ms.mmio("tmr", 0x4))
    root.add_subregion(0x0, pm)
    pm.set_enabled(False)
    ms.address_space("memory", root)
    assert mtree(ms).splitlines()[2:4] == [
        "      0000000000000004-0000000000000007 (prio 0, i/o): tmr",
        "",
    ]
    assert mtree(ms, show_disabled=True).splitlines()[2] == (
        "    0000000000000000-00000000000000ff (prio 0, i/o): pm [disabled]"
    )


def test_alias_line_shows_the_window_in_target_coordinates_and_queues_the_target():
    """MTREE-5: `alias NAME @TARGET OFF-OFFEND`; targets print afterwards as memory-region
    sections, at their own addr, even for disabled aliases."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    bios = ms.rom("pc.bios", 0x40000)
    pci = ms.container("pci", TWO64)
    pci.add_subregion(0xFFFC0000, bios)
    root.add_subregion(0, pci, priority=-1)
    off = ms.alias("shadow", bios, 0x20000, 0x20000)
    root.add_subregion(0xE0000, off, priority=1)
    off.set_enabled(False)
    ms.address_space("memory", root)
    text = mtree(ms, show_disabled=True)
    assert (
        "    00000000000e0000-00000000000fffff (prio 1, rom): alias shadow @pc.bios "
        "0000000000020000-000000000003ffff [disabled]\n"
    ) in text
    assert text.endswith(
        "memory-region: pc.bios\n  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\n\n"
    )
    assert "memory-region: pc.bios" in mtree(ms)  # queued even when the alias is hidden


def test_alias_targets_found_inside_sections_are_printed_too_each_once():
    """MTREE-5: the queue grows while it is printed; each target is printed once."""
    ms = MemorySystem()
    ram = ms.ram("ram", 0x100)
    inner = ms.container("inner", 0x100)
    inner.add_subregion(0, ms.alias("to-ram", ram, 0, 0x100))
    root = ms.container("system", 0x1000)
    root.add_subregion(0, ms.alias("a", inner, 0, 0x100))
    root.add_subregion(0x100, ms.alias("b", inner, 0, 0x100))
    ms.address_space("memory", root)
    sections = [line for line in mtree(ms).splitlines() if line.startswith("memory-region:")]
    assert sections == ["memory-region: inner", "memory-region: ram"]


def test_address_spaces_sharing_a_root_print_once_with_names_sorted_bytewise():
    """MTREE-6 (QEMU 7.2): one group per root object, `address-space:` lines sorted by strcmp."""
    ms = MemorySystem()
    root = ms.container("system", 0x10)
    for name in ("memory", "cpu-memory-0", "SMM"):
        ms.address_space(name, root)
    assert mtree(ms).splitlines()[:3] == [
        "address-space: SMM",
        "address-space: cpu-memory-0",
        "address-space: memory",
    ]


def test_zero_and_one_byte_regions_both_print_start_start():
    """MTREE-1 (MR_SIZE): size 0 prints like size 1."""
    ms = MemorySystem()
    root = ms.container("io", 0x10000)
    root.add_subregion(0x60, ms.mmio("i8042-data", 1))
    root.add_subregion(0x70, ms.mmio("empty", 0))
    ms.address_space("I/O", root)
    lines = mtree(ms).splitlines()
    assert lines[2] == "    0000000000000060-0000000000000060 (prio 0, i/o): i8042-data"
    assert lines[3] == "    0000000000000070-0000000000000070 (prio 0, i/o): empty"


def test_overflow_marker_precedes_the_indentation():
    """MTREE-7: `[DETECTED OVERFLOW!] ` when start + size - 1 wraps past 2**64."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    root.add_subregion(0xFFFF_FFFF_FFFF_F000, ms.mmio("wraps", 0x2000))
    ms.address_space("memory", root)
    assert mtree(ms).splitlines()[2] == (
        "[DETECTED OVERFLOW!]     fffffffffffff000-0000000000000fff (prio 0, i/o): wraps"
    )


def test_overflow_marker_of_a_hidden_region_lands_on_what_is_printed_next():
    """MTREE-7: printed even when the region's own line is suppressed, so it prefixes whatever QEMU
    prints next: here the blank line that ends the address space."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    hidden = ms.mmio("hidden", 0x2000)
    root.add_subregion(0xFFFF_FFFF_FFFF_F000, hidden)
    hidden.set_enabled(False)
    ms.address_space("memory", root)
    ms.address_space("other", ms.container("other-root", 0x10))
    lines = mtree(ms).splitlines()
    assert lines[2:4] == ["[DETECTED OVERFLOW!] ", "address-space: other"]


def test_nonvolatile_prints_nv_prefix_in_tree_and_in_flat_view_through_an_alias():
    """MTREE-8: `nv-` comes from the region in tree mode and from the range in flat mode."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    mem = ms.ram("mem1", 0x1000)
    win = ms.alias("nvdimm", mem, 0, 0x1000)
    win.set_nonvolatile(True)
    root.add_subregion(0x10000, win)
    ms.address_space("memory", root)
    assert "(prio 0, nv-ram): alias nvdimm @mem1" in mtree(ms)
    assert "(prio 0, ram): mem1\n" in mtree(ms)  # its memory-region section
    assert "  0000000000010000-0000000000010fff (prio 0, nv-ram): mem1\n" in mtree(ms, flat=True)


def test_flat_view_shows_terminal_region_offset_and_rom_for_readonly_ranges():
    """MTREE-9: name and priority of the region that supplies the bytes, `@offset` only when not 0,
    `rom` for any range with the inherited readonly flag."""
    ms = MemorySystem()
    root = ms.container("system", TWO64)
    ram = ms.ram("pc.ram", 0x100000)
    root.add_subregion(0, ms.alias("low", ram, 0, 0xC0000))
    ro = ms.alias("pam-rom", ram, 0xC0000, 0x4000)
    ro.set_readonly(True)
    root.add_subregion(0xC0000, ro, priority=1)
    ms.address_space("memory", root)
    assert mtree(ms, flat=True) == (
        "FlatView #0\n"
        ' AS "memory", root: system\n'
        " Root memory region: system\n"
        "  0000000000000000-00000000000bffff (prio 0, ram): pc.ram\n"
        "  00000000000c0000-00000000000c3fff (prio 0, rom): pc.ram @00000000000c0000\n"
        "\n"
    )


def test_flat_views_group_address_spaces_and_name_the_flatview_root():
    """MTREE-10, RENDER-9: ASes sharing a view are listed together (creation order); the root
    line names the region rendered, which may be below the AS root; an alias root adds
    `, alias X`."""
    ms = MemorySystem()
    system = ms.container("system", TWO64)
    system.add_subregion(0, ms.ram("ram", 0x1000))
    ms.address_space("memory", system)
    ms.address_space("dma", ms.alias("bus master", system, 0, TWO64))
    text = mtree(ms, flat=True)
    assert text.startswith(
        "FlatView #0\n"
        ' AS "memory", root: system\n'
        ' AS "dma", root: bus master, alias system\n'
        " Root memory region: ram\n"
    )


def test_an_empty_view_says_no_rendered_flatview():
    """MTREE-10: `Root memory region: (none)` and `No rendered FlatView`."""
    ms = MemorySystem()
    bm = ms.container("bus master container", TWO64)
    alias = ms.alias("bus master", ms.container("system", TWO64), 0, TWO64)
    bm.add_subregion(0, alias)
    alias.set_enabled(False)
    ms.address_space("ich9-ahci", bm)
    ms.address_space("mch", ms.container("bus master container", TWO64))
    assert mtree(ms, flat=True) == (
        "FlatView #0\n"
        ' AS "ich9-ahci", root: bus master container\n'
        ' AS "mch", root: bus master container\n'
        " Root memory region: (none)\n"
        "  No rendered FlatView\n"
        "\n"
    )


def test_a_root_that_renders_nothing_still_names_itself():
    ms = MemorySystem()
    root = ms.container("io", 0x10000)
    root.add_subregion(0, ms.ram("zero", 0))
    root.add_subregion(0x10, ms.ram("zero2", 0))
    ms.address_space("I/O", root)
    assert mtree(ms, flat=True).splitlines()[2:4] == [
        " Root memory region: io",
        "  No rendered FlatView",
    ]
