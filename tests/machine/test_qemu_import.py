"""Real QEMU 7.2 machines: `import-qemu` then `mtree` reproduces what QEMU printed.

Each fixture in tests/fixtures/qemu is a monitor session (`info mtree -D`, `info mtree -f`) of a
real machine (see that folder's README). The description imported from it must print the same
trees and flat views, block for block (QEMU orders blocks by a hash table, so we compare them as
a set), and must survive being written out as YAML and read back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mmiobus.machine import Machine
from mmiobus.machine.qemu_import import import_dump, to_yaml
from mmiobus.memory import MemTxResult, mtree
from support.mtree_compare import diff, flat_blocks, split_dump, tree_blocks

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "qemu").glob("*.txt"))


def imported(path: Path) -> Machine:
    desc, _warnings = import_dump(path.read_text())
    return Machine.from_text(to_yaml(desc), source=path.name)


def test_there_are_real_machines_to_check():
    assert len(FIXTURES) >= 2


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_imported_machine_prints_qemus_flat_views(path: Path):
    _tree, flat = split_dump(path.read_text())
    machine = imported(path)
    assert diff(flat_blocks(flat), flat_blocks(mtree(machine.system, flat=True))) == ""


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_imported_machine_prints_qemus_tree_with_disabled_regions(path: Path):
    tree, _flat = split_dump(path.read_text())
    machine = imported(path)
    assert diff(tree_blocks(tree), tree_blocks(mtree(machine.system, show_disabled=True))) == ""


def test_tree_without_disabled_regions_hides_them_but_keeps_their_children():
    path = next(p for p in FIXTURES if p.stem == "x86_64-q35")
    text = mtree(imported(path).system)
    assert "[disabled]" not in text
    assert "smbase-blackhole" not in text  # disabled leaf: gone
    # ich9-pm is disabled but its enabled children still print, at their own indentation
    assert "      0000000000000000-0000000000000003 (prio 0, i/o): acpi-evt" in text


def test_import_marks_aliases_read_only_where_qemu_shows_rom():
    path = next(p for p in FIXTURES if p.stem == "x86_64-q35-devices-seabios")
    machine = imported(path)
    memory = machine.address_space("memory")
    fr = memory.flatview.lookup(0xC0000)
    assert fr is not None and fr.mr.name == "pc.ram" and fr.readonly


SYSTEM_IO = [p for p in FIXTURES if "\naddress-space: I/O\n" in p.read_text()]


def test_most_fixtures_have_qemus_system_io_space():
    assert len(SYSTEM_IO) >= 40  # every machine has one, x86 or not


@pytest.mark.parametrize("path", SYSTEM_IO, ids=lambda p: p.stem)
def test_the_root_of_qemus_io_space_answers_like_unassigned_io(path: Path):
    """QEMU's system I/O region has unassigned_io_ops: all-ones and MEMTX_OK, whether or not
    anything is mapped in it (on non-x86 machines nothing is)."""
    io_space = imported(path).address_space("I/O")
    root = io_space.root
    hole = next(fr for fr in io_space.flatview.ranges if fr.mr is root)
    assert io_space.read(hole.start, 2) == (b"\xff\xff", MemTxResult.OK)
    assert io_space.write(hole.start, b"\x12") == MemTxResult.OK


def test_an_io_space_without_subregions_is_all_ones_everywhere():
    path = next(p for p in FIXTURES if p.stem == "riscv64-virt")
    io_space = imported(path).address_space("I/O")
    assert io_space.root.subregions == []
    assert io_space.read(0x0, 4) == (b"\xff" * 4, MemTxResult.OK)
    assert io_space.read(0xFFFF, 1) == (b"\xff", MemTxResult.OK)
