"""A guest store to ROM is discarded, as QEMU's TCG discards it: the guest goes on with the
next instruction, the ROM keeps its bytes, and the run counts the store."""

from __future__ import annotations

import struct

import pytest
from mmiobus.cpu import ExitReason
from mmiobus.cpu.standalone import standalone
from mmiobus.machine import Machine
from support.rvasm import Program, c_sw, jal, li, lw, ref, sw
from unicorn import arm64_const as A
from unicorn import riscv_const as R

ROM_BYTES = bytes.fromhex("44332211")
C_LI_A2_7 = 0x461D  # c.li a2, 7


@pytest.mark.parametrize("compressed", [False, True], ids=["sw", "c.sw"])
def test_riscv_store_to_mrom_is_discarded(compressed):
    mrom = 0x1000
    board, _uart = standalone(Machine.builtin("riscv-virt"))
    board.load(mrom, ROM_BYTES, "ROM contents")
    p = Program(0x8000_0000)
    p.emit(li("s0", mrom), li("s1", 0x5A5A))
    if compressed:
        p.half(c_sw("s1", "s0"))  # 2 bytes: stepping over 4 would skip the c.li
        p.half(C_LI_A2_7)
    else:
        p.emit(sw("s1", "s0"), li("a2", 7))
    p.emit(lw("a0", "s0"))
    p.emit(li("t0", 0x100000), li("t1", 0x5555), sw("t1", "t0"))  # power off
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))
    board.load(0x8000_0000, p.to_bytes(), "program")
    result = board.engine.run(timeout_seconds=10)
    assert result.reason == ExitReason.GUEST_EXIT
    uc = board.engine.uc
    assert uc.reg_read(R.UC_RISCV_REG_A2) == 7  # the instruction after the store ran
    assert uc.reg_read(R.UC_RISCV_REG_A0) == 0x11223344  # the guest reads the ROM unchanged
    rom = board.engine.ram_at(mrom)
    assert rom is not None and rom.read(mrom, 4) == ROM_BYTES
    assert result.accesses["rom writes discarded"] == 1


def _a64(*words: int) -> bytes:
    return struct.pack(f"<{len(words)}I", *words)


def test_arm_store_to_flash_is_discarded():
    flash = 0x1000  # in virt.flash0, ROM here
    code = 0x40100000
    board, _uart = standalone(Machine.builtin("arm-virt"))
    board.load(flash, ROM_BYTES, "flash contents")
    program = _a64(
        0xD2820001,  # movz x1, #0x1000
        0x5297DDE2,  # movz w2, #0xbeef
        0xB9000022,  # str w2, [x1]
        0xD28000E3,  # movz x3, #7
        0xB9400024,  # ldr w4, [x1]
        0xD2B08000,  # movz x0, #0x8400, lsl #16
        0xF2800100,  # movk x0, #0x8 -> PSCI SYSTEM_OFF
        0xD4000002,  # hvc #0
        0x14000000,  # b .
    )
    board.load(code, program, "program")
    board.engine.pc = code
    result = board.engine.run(timeout_seconds=10)
    assert result.reason == ExitReason.GUEST_EXIT and result.exit_kind == "poweroff"
    uc = board.engine.uc
    assert uc.reg_read(A.UC_ARM64_REG_X3) == 7  # the instruction after the store ran
    assert uc.reg_read(A.UC_ARM64_REG_X4) == 0x11223344  # the guest reads the flash unchanged
    rom = board.engine.ram_at(flash)
    assert rom is not None and rom.read(flash, 4) == ROM_BYTES
    assert result.accesses["rom writes discarded"] == 1
