"""A tiny RV64 encoder for hand-written guest programs (no assembler needed).

Each function returns one 32-bit instruction word; :class:`Program` lays words out from a base
address, with labels, and :func:`ref` / :func:`la` encode label-relative offsets::

    p = Program(0x8000_0000)
    p.emit(li("t0", 0x100000), li("t1", 0x5555), sw("t1", "t0"))   # power off (sifive_test)
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))
    image = p.to_bytes()
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

REG = {f"x{i}": i for i in range(32)}
REG.update(zero=0, ra=1, sp=2, gp=3, tp=4, t0=5, t1=6, t2=7, s0=8, s1=9, a0=10, a1=11, a2=12,
           a3=13, a4=14, a5=15, a6=16, a7=17, s2=18, s3=19, s4=20, s5=21, t3=28, t4=29)  # fmt: skip
CSR = dict(mstatus=0x300, medeleg=0x302, mideleg=0x303, mie=0x304, mtvec=0x305, mscratch=0x340,
           mepc=0x341, mcause=0x342, mtval=0x343, mip=0x344, sstatus=0x100, sie=0x104,
           stvec=0x105, sepc=0x141, scause=0x142, stval=0x143, sip=0x144)  # fmt: skip

# An instruction whose encoding depends on where it lands: (its pc, the labels) -> word.
Deferred = Callable[[int, dict[str, int]], int]

ECALL, MRET, SRET, WFI, EBREAK = 0x00000073, 0x30200073, 0x10200073, 0x10500073, 0x00100073


def _r(name: str) -> int:
    return REG[name]


def _i(opcode: int, rd: int, f3: int, rs1: int, imm: int) -> int:
    assert -2048 <= imm < 2048, imm
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode


def _s(opcode: int, f3: int, rs1: int, rs2: int, imm: int) -> int:
    assert -2048 <= imm < 2048, imm
    return ((((imm >> 5) & 0x7F) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12)
            | ((imm & 0x1F) << 7) | opcode)  # fmt: skip


def addi(rd: str, rs: str, imm: int) -> int:
    return _i(0x13, _r(rd), 0, _r(rs), imm)


def lui(rd: str, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (_r(rd) << 7) | 0x37


def auipc(rd: str, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (_r(rd) << 7) | 0x17


def ld(rd: str, rs: str, off: int = 0) -> int:
    return _i(0x03, _r(rd), 3, _r(rs), off)


def sd(rs2: str, rs1: str, off: int = 0) -> int:
    return _s(0x23, 3, _r(rs1), _r(rs2), off)


def sw(rs2: str, rs1: str, off: int = 0) -> int:
    return _s(0x23, 2, _r(rs1), _r(rs2), off)


def lw(rd: str, rs: str, off: int = 0) -> int:
    return _i(0x03, _r(rd), 2, _r(rs), off)


def sb(rs2: str, rs1: str, off: int = 0) -> int:
    return _s(0x23, 0, _r(rs1), _r(rs2), off)


def lbu(rd: str, rs: str, off: int = 0) -> int:
    return _i(0x03, _r(rd), 4, _r(rs), off)


def slli(rd: str, rs: str, sh: int) -> int:
    return _i(0x13, _r(rd), 1, _r(rs), sh)


def add(rd: str, rs1: str, rs2: str) -> int:
    return (_r(rs2) << 20) | (_r(rs1) << 15) | (_r(rd) << 7) | 0x33


def or_(rd: str, rs1: str, rs2: str) -> int:
    return (_r(rs2) << 20) | (_r(rs1) << 15) | (6 << 12) | (_r(rd) << 7) | 0x33


def csrrw(rd: str, csr: str, rs: str) -> int:
    return _i(0x73, _r(rd), 1, _r(rs), 0) | (CSR[csr] << 20)


def csrrs(rd: str, csr: str, rs: str) -> int:
    return _i(0x73, _r(rd), 2, _r(rs), 0) | (CSR[csr] << 20)


def csrrc(rd: str, csr: str, rs: str) -> int:
    return _i(0x73, _r(rd), 3, _r(rs), 0) | (CSR[csr] << 20)


def csrw(csr: str, rs: str) -> int:
    return csrrw("zero", csr, rs)


def csrr(rd: str, csr: str) -> int:
    return csrrs(rd, csr, "zero")


def csrr_num(rd: str, csr: int) -> int:
    """``csrr rd, csr`` by CSR number (for CSRs the table does not name, or that do not exist)."""
    return _i(0x73, _r(rd), 2, 0, 0) | (csr << 20)


def _b(f3: int, rs1: str, rs2: str, off: int) -> int:
    assert off % 2 == 0 and -4096 <= off < 4096, off
    return ((((off >> 12) & 1) << 31) | (((off >> 5) & 0x3F) << 25) | (_r(rs2) << 20)
            | (_r(rs1) << 15) | (f3 << 12) | (((off >> 1) & 0xF) << 8) | (((off >> 11) & 1) << 7)
            | 0x63)  # fmt: skip


def beq(rs1: str, rs2: str, off: int) -> int:
    return _b(0, rs1, rs2, off)


def bne(rs1: str, rs2: str, off: int) -> int:
    return _b(1, rs1, rs2, off)


def bltu(rs1: str, rs2: str, off: int) -> int:
    return _b(6, rs1, rs2, off)


def jal(rd: str, off: int) -> int:
    assert off % 2 == 0, off
    return ((((off >> 20) & 1) << 31) | (((off >> 1) & 0x3FF) << 21) | (((off >> 11) & 1) << 20)
            | (((off >> 12) & 0xFF) << 12) | (_r(rd) << 7) | 0x6F)  # fmt: skip


def jalr(rd: str, rs: str, off: int = 0) -> int:
    return _i(0x67, _r(rd), 0, _r(rs), off)


def c_sw(rs2: str, rs1: str) -> int:
    """``c.sw rs2, 0(rs1)``: a 2-byte store (both registers among s0, s1, a0-a5)."""
    low2, high2 = _r(rs2) - 8, _r(rs1) - 8
    assert 0 <= low2 < 8 and 0 <= high2 < 8, (rs2, rs1)
    return (6 << 13) | (high2 << 7) | (low2 << 2)


def li(rd: str, value: int) -> list[int]:
    """Load a 32-bit signed constant (lui + addi)."""
    lo = ((value & 0xFFF) ^ 0x800) - 0x800
    hi = ((value - lo) >> 12) & 0xFFFFF
    out = [lui(rd, hi)] if hi else []
    out.append(addi(rd, rd if hi else "zero", lo))
    return out


class Program:
    """Assemble 32-bit words (and 16-bit halfwords via :meth:`half`) from ``base`` on, with
    labels; a word may be deferred (a function of its pc and the labels, see :func:`ref`)."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.items: list[int | Deferred | tuple[str, int]] = []
        self.labels: dict[str, int] = {}
        self._size = 0

    def label(self, name: str) -> None:
        self.labels[name] = self.base + self._size

    def here(self) -> int:
        return self.base + self._size

    def emit(self, *words: Any) -> None:
        """Append words; lists (``li``, ``la``) are flattened."""
        for w in words:
            if isinstance(w, list):
                self.emit(*w)
                continue
            self.items.append(w)
            self._size += 4

    def half(self, value: int) -> None:
        self.items.append(("half", value))
        self._size += 2

    def align(self, n: int) -> None:
        while self._size % n:
            self.half(0x0001)  # c.nop

    def to_bytes(self) -> bytes:
        out = bytearray()
        for item in self.items:
            pc = self.base + len(out)
            if isinstance(item, tuple):
                out += struct.pack("<H", item[1])
            elif callable(item):
                out += struct.pack("<I", item(pc, self.labels))
            else:
                out += struct.pack("<I", item)
        return bytes(out)


def ref(fn: Callable[..., int], label: str, *args: str) -> Deferred:
    """An instruction whose offset is *label* minus its own address: ``fn(*args, off)``."""
    return lambda pc, labels: fn(*args, labels[label] - pc)


def la(rd: str, label: str) -> list[Deferred]:
    """Load the address of *label* (auipc + addi, pc-relative)."""

    def hi(pc: int, labels: dict[str, int]) -> int:
        off = labels[label] - pc
        return auipc(rd, ((off + 0x800) >> 12) & 0xFFFFF)

    def lo(pc: int, labels: dict[str, int]) -> int:
        off = labels[label] - (pc - 4)
        return addi(rd, rd, ((off & 0xFFF) ^ 0x800) - 0x800)

    return [hi, lo]
