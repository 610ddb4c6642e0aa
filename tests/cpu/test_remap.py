"""The engine takes a new memory map between slices (``CpuEngine.remap``): what stays mapped is
left as it is, what is new is what the guest reads, and a map that cannot be taken ends the run
with an error that says so."""

from __future__ import annotations

import mmap
import struct

import pytest
from mmiobus.cpu import CpuError, ExitReason
from mmiobus.cpu.memory_map import Mapping
from mmiobus.cpu.standalone import standalone
from mmiobus.machine import Machine
from support.rvasm import Program, jal, la, ld, li, ref, sw
from unicorn import arm64_const as A
from unicorn import riscv_const as R

WATCH = 0x9000_0000
LDR_X0_X1, B_SELF = 0xF9400020, 0x14000000  # ldr x0, [x1]; b .


def _board():
    board, _uart = standalone(Machine.builtin("riscv-virt"))
    p = Program(0x8000_0000)
    p.labels["watch"] = WATCH
    p.emit(la("t0", "watch"), ld("a0", "t0"))
    p.emit(li("t0", 0x100000), li("t1", 0x5555), sw("t1", "t0"))  # power off
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))
    board.load(0x8000_0000, p.to_bytes(), "program")
    return board


def _page(value: int) -> mmap.mmap:
    page = mmap.mmap(-1, 0x1000)
    page[:8] = value.to_bytes(8, "little")
    return page


def test_a_remap_maps_what_is_new_and_leaves_what_stays():
    board = _board()
    engine = board.engine
    before = engine.memory_map
    ram = engine.ram_at(0x8000_0000)
    engine.remap([*before, Mapping(WATCH, 0x1000, "watch", "ram", _page(0x1234))])
    result = engine.run(timeout_seconds=10)
    assert result.reason == ExitReason.GUEST_EXIT
    assert engine.uc.reg_read(R.UC_RISCV_REG_A0) == 0x1234
    assert engine.ram_at(0x8000_0000) is ram  # kept, not mapped again
    assert [m.name for m in engine.memory_map] == [m.name for m in before] + ["watch"]
    # Taken away again: the page is unmapped.
    engine.map_memory(before)
    assert engine.memory_map == before
    assert engine.ram_at(WATCH) is None


def test_a_map_that_overlaps_a_board_device_ends_the_run_and_says_so():
    board = _board()
    engine = board.engine
    clint = 0x200_0000  # the CPU's own ACLINT
    engine.remap([*engine.memory_map, Mapping(clint, 0x1000, "clash", "ram", _page(0))])
    with pytest.raises(CpuError, match="cannot follow the bus's new memory map: clash at"):
        engine.run(timeout_seconds=10)


def test_an_arm_guest_reads_ram_mapped_while_it_was_stopped():
    board, _uart = standalone(Machine.builtin("arm-virt"))
    engine = board.engine
    start = 0x4008_0000  # in RAM
    board.load(start, struct.pack("<2I", LDR_X0_X1, B_SELF), "program")
    engine.uc.reg_write(A.UC_ARM64_REG_X1, WATCH)
    engine.pc = start
    engine.remap([*engine.memory_map, Mapping(WATCH, 0x1000, "watch", "ram", _page(0x5678))])
    result = engine.run(until_pc=start + 4, timeout_seconds=10)
    assert result.reason == ExitReason.REACHED
    assert engine.uc.reg_read(A.UC_ARM64_REG_X0) == 0x5678
