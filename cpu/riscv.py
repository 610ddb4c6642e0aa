"""RISC-V 64 on Unicorn: hand-made trap entry, interrupt injection, ``wfi``.

Unicorn (QEMU 5.0's RISC-V, privileged spec 1.10) executes instructions and
``mret``/``sret`` itself, but:

* a synchronous exception does not reach the guest: it arrives in
  ``UC_HOOK_INTR`` with ``pc`` already advanced by 4 (also for 2-byte
  instructions), ``ecall`` always as cause 8. :meth:`RiscvEngine.enter_trap`
  does the trap entry per the privileged spec (delegation, xEPC, xCAUSE,
  xTVAL, xSTATUS.xPP/xPIE/xIE, pc = xTVEC, vectored for interrupts).
  xTVAL is the instruction for illegal instructions and the pc for
  breakpoints; Unicorn does not expose the faulting address of page/access
  faults, so their xTVAL is 0.
* CSRs read or written through ``reg_read``/``reg_write`` are privilege
  checked against the *current* mode: an M-mode CSR read from S-mode silently
  returns garbage. Every CSR access here switches to M first (:meth:`csrs`).
* ``mip`` written through ``reg_write`` only takes SSIP/STIP/SEIP. So the
  M-level lines (MSIP, MTIP, MEIP) are injected by hand between slices, while
  SEIP from the PLIC is written into Unicorn's ``mip`` and Unicorn delivers it
  (and STIP/SSIP that the guest sets) itself, with exact masking.
* ``wfi`` ends ``emu_start`` with the pc after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unicorn import Uc, UcError
from unicorn import riscv_const as R
from unicorn import unicorn_const as UC

from .bus import Bus
from .clock import VirtualClock
from .engine import CpuEngine
from .results import UnhandledTrap

# mip / mie bits
SSIP, MSIP, STIP, MTIP, SEIP, MEIP = 1 << 1, 1 << 3, 1 << 5, 1 << 7, 1 << 9, 1 << 11
M_LINES = MSIP | MTIP | MEIP
_M_PRIORITY = (11, 3, 7)  # MEI > MSI > MTI
# mstatus fields
SIE, MIE, SPIE, MPIE, SPP = 1 << 1, 1 << 3, 1 << 5, 1 << 7, 1 << 8
MPP_SHIFT = 11
MPP = 3 << MPP_SHIFT
PRV_U, PRV_S, PRV_M = 0, 1, 3
# exception causes
ILLEGAL_INSTRUCTION, BREAKPOINT, ECALL_U, ECALL_S, ECALL_M = 2, 3, 8, 9, 11
WFI = 0x10500073
EBREAK, C_EBREAK = 0x00100073, 0x9002
CAUSE_NAMES = {
    0: "instruction address misaligned",
    1: "instruction access fault",
    2: "illegal instruction",
    3: "breakpoint",
    4: "load address misaligned",
    5: "load access fault",
    6: "store/AMO address misaligned",
    7: "store/AMO access fault",
    8: "ecall from U-mode",
    9: "ecall from S-mode",
    11: "ecall from M-mode",
    12: "instruction page fault",
    13: "load page fault",
    15: "store/AMO page fault",
}
INTERRUPT_NAMES = {1: "SSI", 3: "MSI", 5: "STI", 7: "MTI", 9: "SEI", 11: "MEI"}

LineSource = Callable[[], int]
DeadlineSource = Callable[[], int | None]


class RiscvEngine(CpuEngine):
    """A single-hart RV64 machine (starts in M-mode with all registers zero).

    Board devices connect with :meth:`add_line_source` (a function returning
    the mip bits it drives high now: MSIP/MTIP/MEIP/SEIP) and
    :meth:`add_deadline_source` (the next future tick at which a line rises);
    they call :meth:`kick` when a level may have changed.
    """

    pc_reg = R.UC_RISCV_REG_PC

    def __init__(
        self,
        clock: VirtualClock,
        bus: Bus | None = None,
        *,
        cpu_model: int | None = None,
        count_instructions: bool = False,
        idle: str = "skip",
    ) -> None:
        uc = Uc(UC.UC_ARCH_RISCV, UC.UC_MODE_RISCV64, cpu_model)  # type: ignore[call-arg]
        super().__init__(uc, clock, bus, count_instructions, idle)
        self._line_sources: list[LineSource] = []
        self._deadline_sources: list[DeadlineSource] = []
        self._seip_written = 0
        uc.hook_add(UC.UC_HOOK_INTR, self._on_intr)

    # ---- wiring --------------------------------------------------------------------
    def add_line_source(self, source: LineSource) -> None:
        self._line_sources.append(source)

    def add_deadline_source(self, source: DeadlineSource) -> None:
        self._deadline_sources.append(source)

    def lines(self) -> int:
        """The mip bits the board devices drive high now."""
        bits = 0
        for source in self._line_sources:
            bits |= source()
        return bits

    # ---- registers ------------------------------------------------------------------
    @property
    def priv(self) -> int:
        return self.uc.reg_read(R.UC_RISCV_REG_PRIV)

    @priv.setter
    def priv(self, value: int) -> None:
        self.uc.reg_write(R.UC_RISCV_REG_PRIV, value)

    def csrs(self, *regs: int) -> list[int]:
        """Read Unicorn CSR registers (``UC_RISCV_REG_*``) as M-mode would."""
        uc = self.uc
        priv = uc.reg_read(R.UC_RISCV_REG_PRIV)
        if priv != PRV_M:
            uc.reg_write(R.UC_RISCV_REG_PRIV, PRV_M)
        try:
            return [uc.reg_read(reg) for reg in regs]
        finally:
            if priv != PRV_M:
                uc.reg_write(R.UC_RISCV_REG_PRIV, priv)

    def set_csrs(self, values: dict[int, int]) -> None:
        """Write Unicorn CSR registers as M-mode would (privilege unchanged)."""
        uc = self.uc
        priv = uc.reg_read(R.UC_RISCV_REG_PRIV)
        if priv != PRV_M:
            uc.reg_write(R.UC_RISCV_REG_PRIV, PRV_M)
        try:
            for reg, value in values.items():
                uc.reg_write(reg, value)
        finally:
            if priv != PRV_M:
                uc.reg_write(R.UC_RISCV_REG_PRIV, priv)

    def fetch_insn(self, addr: int) -> int:
        """The instruction bits at *addr* (16 bits for a compressed one)."""
        low = int.from_bytes(self.uc.mem_read(addr, 2), "little")
        if low & 3 != 3:
            return low
        return int.from_bytes(self.uc.mem_read(addr, 4), "little")

    # ---- traps ------------------------------------------------------------------------
    def enter_trap(self, cause: int, interrupt: bool, epc: int, tval: int = 0) -> None:
        """Take a trap now, exactly as the hardware would: choose M or S by
        privilege and medeleg/mideleg, save the state, jump to the vector.
        Raises :class:`UnhandledTrap` if the vector is not executable memory."""
        uc = self.uc
        priv = uc.reg_read(R.UC_RISCV_REG_PRIV)
        uc.reg_write(R.UC_RISCV_REG_PRIV, PRV_M)
        deleg_reg = R.UC_RISCV_REG_MIDELEG if interrupt else R.UC_RISCV_REG_MEDELEG
        deleg, status = uc.reg_read(deleg_reg), uc.reg_read(R.UC_RISCV_REG_MSTATUS)
        to_s = priv <= PRV_S and (deleg >> cause) & 1
        if to_s:
            tvec = uc.reg_read(R.UC_RISCV_REG_STVEC)
            status = (
                (status & ~(SPIE | SPP | SIE))
                | (SPIE if status & SIE else 0)
                | (SPP if priv == PRV_S else 0)
            )
            regs = (R.UC_RISCV_REG_SEPC, R.UC_RISCV_REG_SCAUSE, R.UC_RISCV_REG_STVAL)
            new_priv = PRV_S
        else:
            tvec = uc.reg_read(R.UC_RISCV_REG_MTVEC)
            status = (
                (status & ~(MPIE | MPP | MIE)) | (MPIE if status & MIE else 0) | (priv << MPP_SHIFT)
            )
            regs = (R.UC_RISCV_REG_MEPC, R.UC_RISCV_REG_MCAUSE, R.UC_RISCV_REG_MTVAL)
            new_priv = PRV_M
        target = (tvec & ~3) + (4 * cause if interrupt and tvec & 3 == 1 else 0)
        if not self.is_executable(target):
            uc.reg_write(R.UC_RISCV_REG_PRIV, priv)
            what = (
                INTERRUPT_NAMES.get(cause, f"interrupt {cause}")
                if interrupt
                else CAUSE_NAMES.get(cause, f"exception {cause}")
            )
            level = "stvec" if to_s else "mtvec"
            raise UnhandledTrap(
                what,
                epc,
                f"{level}={tvec:#x} is not executable memory (privilege {priv}, tval={tval:#x})",
            )
        uc.reg_write(regs[0], epc)
        uc.reg_write(regs[1], cause | (1 << 63 if interrupt else 0))
        uc.reg_write(regs[2], tval)
        uc.reg_write(R.UC_RISCV_REG_MSTATUS, status)
        uc.reg_write(R.UC_RISCV_REG_PRIV, new_priv)
        uc.reg_write(R.UC_RISCV_REG_PC, target)
        name = (
            INTERRUPT_NAMES.get(cause, str(cause))
            if interrupt
            else CAUSE_NAMES.get(cause, str(cause))
        )
        self.traps[("interrupt " if interrupt else "") + name] += 1

    def _on_intr(self, uc: Uc, intno: int, _: Any) -> None:
        epc = uc.reg_read(R.UC_RISCV_REG_PC) - 4  # Unicorn added 4, whatever the length
        cause, tval = intno, 0
        if cause == ECALL_U:
            cause = {PRV_U: ECALL_U, PRV_S: ECALL_S, PRV_M: ECALL_M}[self.priv]
        elif cause == ILLEGAL_INSTRUCTION:
            tval = self.fetch_insn(epc)
        if self.count_instructions:  # the trapping instruction counts, the rest of its block not
            self.settle_count(epc + (2 if self.fetch_insn(epc) & 3 != 3 else 4))
        self.enter_trap(cause, False, epc, tval)

    def instruction_length(self, pc: int) -> int:
        return 2 if self.fetch_insn(pc) & 3 != 3 else 4

    def _handle_engine_error(self, err: UcError) -> bool:
        # ebreak is a "stop" exception in Unicorn: the pc is still at the instruction
        pc = self.pc
        if (
            err.errno == UC.UC_ERR_EXCEPTION
            and self.ram_at(pc, 2) is not None
            and self.fetch_insn(pc) in (EBREAK, C_EBREAK)
        ):
            self.enter_trap(BREAKPOINT, False, pc, pc)
            return True
        return False

    # ---- interrupts ---------------------------------------------------------------------
    def _service(self) -> None:
        lines = self.lines()
        seip = lines & SEIP
        if seip != self._seip_written:  # mirror the PLIC's S output into Unicorn's mip
            (mip,) = self.csrs(R.UC_RISCV_REG_MIP)
            self.set_csrs({R.UC_RISCV_REG_MIP: (mip & ~SEIP) | seip})
            self._seip_written = seip
        m_lines = lines & M_LINES
        if not m_lines:
            return
        priv = self.priv
        mie, status = self.csrs(R.UC_RISCV_REG_MIE, R.UC_RISCV_REG_MSTATUS)
        pending = m_lines & mie
        if pending and (priv < PRV_M or status & MIE):
            cause = next(c for c in _M_PRIORITY if pending >> c & 1)
            self.enter_trap(cause, True, self.pc)
            return
        # high but masked: re-evaluated at every slice end, taken once unmasked

    def wake_pending(self) -> bool:
        mie, mip = self.csrs(R.UC_RISCV_REG_MIE, R.UC_RISCV_REG_MIP)
        return bool((self.lines() | mip) & mie)

    def next_deadline(self) -> int | None:
        deadlines = [d for d in (src() for src in self._deadline_sources) if d is not None]
        return min(deadlines) if deadlines else None

    def stopped_in_wfi(self) -> bool:
        pc = self.pc
        return self.ram_at(pc - 4, 4) is not None and self.fetch_insn(pc - 4) == WFI

    def block_instructions(self, addr: int, size: int) -> int:
        try:
            code = bytes(self.uc.mem_read(addr, size))
        except UcError:
            return max(1, size // 4)
        count, off = 0, 0
        while off < size:
            off += 4 if code[off] & 3 == 3 else 2
            count += 1
        return count
