"""Tiny RV64 guest programs written as machine code: traps, interrupts, errors."""

from __future__ import annotations

import threading
import time

import pytest
from mmiobus.cpu import BusAccessError, ExitReason, UnhandledTrap, UnmappedAccess
from mmiobus.cpu.board import Board
from mmiobus.cpu.clock import VirtualClock
from mmiobus.cpu.riscv import RiscvEngine
from mmiobus.cpu.standalone import standalone
from mmiobus.machine import Machine
from support.rvasm import (
    ECALL,
    MRET,
    WFI,
    Program,
    add,
    addi,
    bltu,
    csrr,
    csrr_num,
    csrrc,
    csrrs,
    csrw,
    jal,
    jalr,
    la,
    ld,
    li,
    lw,
    or_,
    ref,
    sd,
    slli,
    sw,
)
from unicorn import riscv_const as R

BASE = 0x8000_0000  # riscv-virt's RAM, where the board starts the hart


def riscv_virt(count_instructions: bool = False) -> tuple[Board, RiscvEngine]:
    board, _uart = standalone(Machine.builtin("riscv-virt"), count_instructions=count_instructions)
    assert isinstance(board.engine, RiscvEngine)
    return board, board.engine


def bare_engine(count_instructions: bool = False) -> RiscvEngine:
    """A hart with 64 KiB of RAM at BASE and nothing else mapped."""
    m = RiscvEngine(VirtualClock(10_000_000), count_instructions=count_instructions)
    m.add_ram(BASE, 0x10000)
    m.pc = BASE
    return m


def reg(m: RiscvEngine, name: str) -> int:
    return m.uc.reg_read(getattr(R, f"UC_RISCV_REG_{name.upper()}"))


def test_timer_interrupts_counted_then_sifive_test_exit():
    n, period = 5, 10_000  # 1 ms at 10 MHz
    p = Program(BASE)
    p.emit(la("t0", "handler"), csrw("mtvec", "t0"))
    p.emit(li("s0", 0), li("s1", n))
    p.emit(li("s2", 0x2004000), li("s3", 0x200BFF8))  # mtimecmp, mtime
    p.emit(ld("t1", "s3"), li("t2", period), add("t1", "t1", "t2"), sd("t1", "s2"))
    p.emit(li("t0", 0x80), csrrs("zero", "mie", "t0"))  # MTIE
    p.emit(li("t0", 0x8), csrrs("zero", "mstatus", "t0"))  # MIE
    p.label("loop")
    p.emit(WFI, ref(bltu, "loop", "s0", "s1"))
    p.emit(li("t0", 0x100000), slli("t1", "s0", 16), li("t2", 0x3333), or_("t1", "t1", "t2"))
    p.emit(sw("t1", "t0"))  # exit code = count
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))
    p.label("handler")
    p.emit(addi("s0", "s0", 1), csrr("s4", "mcause"))
    p.emit(ld("t1", "s3"), add("t1", "t1", "t2"), sd("t1", "s2"))  # next deadline
    p.emit(MRET)
    b, m = riscv_virt(count_instructions=True)
    b.load(BASE, p.to_bytes(), "program")
    result = m.run(timeout_seconds=20)
    assert result.reason == ExitReason.GUEST_EXIT
    assert result.exit_code == n
    assert reg(m, "s0") == n
    assert reg(m, "s4") == (1 << 63) | 7
    assert result.traps["interrupt MTI"] == n
    # with idle="skip" the waits cost no wall time, yet mtime moved by >= n periods
    clint, _ = b.served[b.layout.board_region("aclint-mtimer")]
    assert clint.mtime() >= n * period


def _to_s_mode(p: Program, s_entry: str) -> None:
    """M-mode prologue: mtvec = m_handler, stvec = s_handler, delegate illegal
    instructions (cause 2) to S, mret into S-mode at *s_entry*."""
    p.emit(la("t0", "m_handler"), csrw("mtvec", "t0"))
    p.emit(la("t0", "s_handler"), csrw("stvec", "t0"))
    p.emit(li("t0", 1 << 2), csrw("medeleg", "t0"))
    p.emit(li("t0", 0x1800), csrrc("zero", "mstatus", "t0"))
    p.emit(li("t0", 0x0800), csrrs("zero", "mstatus", "t0"))  # MPP = S
    p.emit(la("t0", s_entry), csrw("mepc", "t0"), MRET)


def _handlers(p: Program) -> None:
    p.label("s_handler")  # record, then ecall to M
    p.emit(csrr("a1", "scause"), csrr("a2", "sepc"), csrr("a3", "stval"), csrr("a4", "sstatus"))
    p.emit(ECALL)
    p.label("m_handler")
    p.emit(csrr("a5", "mcause"), csrr("a6", "mepc"))
    p.emit(li("t0", 0x100000), li("t1", 0x5555), sw("t1", "t0"))
    p.label("m_spin")
    p.emit(ref(jal, "m_spin", "zero"))


@pytest.mark.parametrize("compressed", [False, True], ids=["4-byte", "2-byte"])
def test_illegal_instruction_delegated_to_s_mode(compressed):
    p = Program(BASE)
    _to_s_mode(p, "s_code")
    p.label("s_code")
    if compressed:
        bad = 0x0000  # c.unimp: a 2-byte illegal instruction
        p.half(bad)
        p.half(0x0001)
    else:
        bad = csrr_num("a0", 0x340)  # csrr a0, mscratch: illegal from S-mode
        p.emit(bad)
    p.emit(ref(jal, "s_code", "zero"))
    _handlers(p)
    b, m = riscv_virt()
    b.load(BASE, p.to_bytes(), "program")
    result = m.run(timeout_seconds=10)
    assert result.reason == ExitReason.GUEST_EXIT
    assert reg(m, "a1") == 2  # scause: illegal instruction
    assert reg(m, "a2") == p.labels["s_code"]  # sepc: the instruction itself
    assert reg(m, "a3") == bad  # stval: its bits
    assert reg(m, "a4") & (1 << 8)  # sstatus.SPP = S
    assert reg(m, "a5") == 9  # then ecall from S-mode reached M
    assert result.traps["illegal instruction"] == 1
    assert result.traps["ecall from S-mode"] == 1


def test_missing_trap_handler_is_a_clear_error():
    p = Program(BASE)
    p.emit(csrr_num("a0", 0x7FF))  # nonexistent CSR, mtvec still 0
    b, m = riscv_virt()
    b.load(BASE, p.to_bytes(), "program")
    with pytest.raises(UnhandledTrap) as info:
        m.run(timeout_seconds=5)
    assert info.value.pc == BASE
    assert "illegal instruction" in str(info.value) and "mtvec=0x0" in str(info.value)
    assert info.value.result is not None


def test_stop_at_pc():
    p = Program(BASE)
    p.emit(li("a0", 1), li("a0", 2))
    p.label("target")
    p.emit(li("a0", 3))
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))
    b, m = riscv_virt()
    b.load(BASE, p.to_bytes(), "program")
    result = m.run(until_pc=p.labels["target"], timeout_seconds=5)
    assert result.reason == ExitReason.REACHED and result.pc == p.labels["target"]
    assert reg(m, "a0") == 2


def test_unmapped_fetch_reports_pc_and_address():
    m = bare_engine()
    p = Program(BASE)
    p.emit(li("t0", 0x1000), slli("t0", "t0", 20), jalr("zero", "t0"))
    m.load(BASE, p.to_bytes())
    with pytest.raises(UnmappedAccess) as info:
        m.run(timeout_seconds=5)
    err = info.value
    assert err.kind == "fetch" and err.addr == 0x100000000 and err.pc == 0x100000000
    assert "unmapped" in str(err)


def test_unmapped_load_reports_pc_and_address():
    m = bare_engine()
    p = Program(BASE)
    p.emit(li("t0", 0x1000), slli("t0", "t0", 20), ld("a0", "t0", 8))
    m.load(BASE, p.to_bytes())
    with pytest.raises(UnmappedAccess) as info:
        m.run(timeout_seconds=5)
    assert info.value.kind == "read" and info.value.addr == 0x100000008
    assert info.value.pc == BASE + 12


def test_bus_fault_reports_address_and_exact_pc():
    # The bus window around the UART is a whole page; the bus has only the UART's 8 bytes.
    b, m = riscv_virt()
    p = Program(BASE)
    p.emit(li("t0", 0x10000100), li("a0", 7))
    p.label("load")
    p.emit(lw("a1", "t0", 4), li("a0", 8))
    b.load(BASE, p.to_bytes(), "program")
    with pytest.raises(BusAccessError) as info:
        m.run(timeout_seconds=5)
    err = info.value
    assert err.addr == 0x10000104 and not err.is_write and err.pc == p.labels["load"]
    assert reg(m, "a0") == 7  # nothing after the load ran
    assert "decode error" in str(err)


def test_plic_external_interrupt_from_another_thread_reaches_s_mode():
    """A line set from a thread wakes a hart in wfi; SEIP goes through Unicorn's own mip."""
    p = Program(BASE)
    p.emit(la("t0", "m_handler"), csrw("mtvec", "t0"), la("t0", "s_handler"), csrw("stvec", "t0"))
    p.emit(li("t0", 1 << 9), csrw("mideleg", "t0"))  # SEI -> S
    p.emit(li("t0", 0xC000000), li("t1", 1), sw("t1", "t0", 40))  # priority[10] = 1
    p.emit(li("t0", 0xC002080), li("t1", 1 << 10), sw("t1", "t0"))  # ctx 1 enables
    p.emit(li("t0", 1 << 9), csrrs("zero", "sie", "t0"))  # SEIE
    p.emit(li("t0", 0x1800), csrrc("zero", "mstatus", "t0"), li("t0", 0x0802))
    p.emit(csrrs("zero", "mstatus", "t0"))  # MPP = S, SIE
    p.emit(la("t0", "s_loop"), csrw("mepc", "t0"), MRET)
    p.label("s_loop")
    p.emit(WFI, ref(jal, "s_loop", "zero"))
    p.label("s_handler")
    p.emit(csrr("a1", "scause"), li("t0", 0xC201004), lw("a2", "t0"), sw("a2", "t0"), ECALL)
    p.label("m_handler")
    p.emit(csrr("a5", "mcause"), li("t0", 0x100000), li("t1", 0x5555), sw("t1", "t0"))
    p.label("m_spin")
    p.emit(ref(jal, "m_spin", "zero"))
    b, m = riscv_virt()
    b.load(BASE, p.to_bytes(), "program")
    # The UART's line, as the bus would set it: wired to PLIC source 10 by the description.
    timer = threading.Timer(0.2, b.set_line, ("uart0.irq", True))
    started = time.monotonic()
    timer.start()
    try:
        result = m.run(timeout_seconds=10)
    finally:
        timer.cancel()
    waited = time.monotonic() - started  # the run began a little after the timer
    assert result.reason == ExitReason.GUEST_EXIT
    assert reg(m, "a1") == (1 << 63) | 9  # supervisor external interrupt
    assert reg(m, "a2") == 10  # claimed source 10
    assert reg(m, "a5") == 9  # ecall from S
    assert waited >= 0.2  # the hart slept in wfi until the line rose


class Counter:
    """Counts the writes it sees and keeps the last value."""

    def __init__(self) -> None:
        self.writes = self.last = 0

    def read(self, offset: int, size: int) -> int:
        return self.writes

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes += 1
        self.last = value


def test_stop_and_resume_never_replays_an_access():
    """Stops from another thread land between slices: after many stop/resume cycles
    the device saw exactly as many writes as the guest made (Unicorn's emu_stop
    mid-block would make a resumed run repeat the last memory instruction)."""
    m = bare_engine()
    dev = m.add_device(0x3000000, 0x1000, Counter(), "counter")
    p = Program(BASE)
    p.emit(li("t0", 0x3000000))
    p.label("top")
    p.emit(addi("s0", "s0", 1), sw("s0", "t0"), ref(jal, "top", "zero"))
    m.load(BASE, p.to_bytes())
    for _ in range(20):
        timer = threading.Timer(0.005, m.stop)
        timer.start()
        result = m.run(timeout_seconds=10)
        timer.join()
        assert result.reason == ExitReason.STOPPED
    # the guest wrote 1, 2, 3, ... once each; it may have stopped between addi and sw
    assert dev.writes == dev.last > 1000
    assert reg(m, "s0") - dev.last in (0, 1)


def test_max_instructions_counts_blocks():
    m = bare_engine(count_instructions=True)
    p = Program(BASE)
    p.label("top")
    p.emit(addi("s0", "s0", 1), addi("s1", "s1", 2), ref(jal, "top", "zero"))
    m.load(BASE, p.to_bytes())
    result = m.run(max_instructions=30_001, timeout_seconds=10)
    assert result.reason == ExitReason.MAX_INSTRUCTIONS
    assert result.instructions == 30_000 == 3 * reg(m, "s0")
