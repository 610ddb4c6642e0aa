"""AArch64 on Unicorn: identity TLB, our own generic timer, IRQ entry, PSCI.

What Unicorn (QEMU 5.0's Arm) does and does not do here:

* The default TLB mode takes a prefetch abort right after U-Boot turns its MMU
  on; ``ctl_set_tlb_mode(UC_TLB_VIRTUAL)`` (virtual = physical) works. It is
  not an MMU: an OS with real page tables needs more.
* The generic timer's counter is readable, but Unicorn never sets ISTATUS and
  raises no interrupt (its timer code is compiled out). All timer system
  registers are therefore served by :class:`GenericTimer` through Unicorn's
  MRS/MSR instruction hooks, from the machine's :class:`~.clock.VirtualClock`,
  and drive GIC PPIs 30 (physical) and 27 (virtual).
* Exceptions do not reach the guest: they arrive in ``UC_HOOK_INTR``. HVC/SMC
  with a PSCI function id are answered here (version, features, system off,
  system reset); anything else ends the run with :class:`UnhandledTrap` (the
  syndrome is not exposed, so a faithful ESR cannot be built).
* IRQs are injected by hand between slices when the GIC signals one and
  PSTATE.I is clear: SPSR_EL1, ELR_EL1, PSTATE = EL1h with DAIF masked, pc =
  VBAR_EL1 + 0x280 (from EL1h) or + 0x080 (from EL1t). Only from EL1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unicorn import Uc, UcError
from unicorn import arm64_const as A
from unicorn import unicorn_const as UC

from .bus import Bus
from .clock import VirtualClock
from .engine import CpuEngine
from .gic import Gic
from .results import UnhandledTrap

WFI = 0xD503207F
SPSR_EL1 = (3, 0, 4, 0, 0)  # op0, op1, CRn, CRm, op2
PSTATE_I = 1 << 7
DAIF = 0x3C0
EXCEPTION_NAMES = {
    1: "undefined instruction",
    2: "SVC",
    3: "prefetch abort",
    4: "data abort",
    7: "breakpoint",
    11: "HVC",
    13: "SMC",
}
EXCP_HVC, EXCP_SMC, EXCP_UDEF = 11, 13, 1
# PSCI 0.2+ function ids (SMC32/SMC64 calling convention)
PSCI_VERSION, PSCI_FEATURES = 0x84000000, 0x8400000A
PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET = 0x84000008, 0x84000009
PSCI_NOT_SUPPORTED = (1 << 64) - 1  # -1


class GenericTimer:
    """CNTFRQ/CNTPCT/CNTVCT and the EL1 physical and virtual timers (CTL, CVAL,
    TVAL), counting the machine's clock (CNTVOFF is 0)."""

    PHYS_PPI, VIRT_PPI = 30, 27

    def __init__(self, clock: VirtualClock, set_irq: Callable[[int, bool], None]) -> None:
        self.clock, self.set_irq = clock, set_irq
        self.ctl = [0, 0]  # physical, virtual: bit 0 ENABLE, bit 1 IMASK (ISTATUS computed)
        self.cval = [0, 0]
        self._levels = [False, False]

    def _istatus(self, t: int) -> bool:
        return bool(self.ctl[t] & 1) and self.clock.ticks() >= self.cval[t]

    def read(self, key: tuple[int, int, int, int, int]) -> int | None:
        """Value of the system register *key* (op0, op1, crn, crm, op2), None if not a timer one."""
        op0, op1, crn, crm, op2 = key
        if (op0, op1, crn) != (3, 3, 14):
            return None
        if crm == 0:
            return {0: self.clock.freq_hz, 1: self.clock.ticks(), 2: self.clock.ticks()}.get(op2)
        if crm in (2, 3) and op2 <= 2:
            t = crm - 2
            if op2 == 0:
                return (self.cval[t] - self.clock.ticks()) & 0xFFFFFFFF
            if op2 == 1:
                return (self.ctl[t] & 3) | (4 if self._istatus(t) else 0)
            return self.cval[t]
        return None

    def write(self, key: tuple[int, int, int, int, int], value: int) -> bool:
        """Store a timer register; False if *key* is not one."""
        op0, op1, crn, crm, op2 = key
        if (op0, op1, crn) != (3, 3, 14) or crm not in (2, 3) or op2 > 2:
            return False
        t = crm - 2
        if op2 == 0:  # TVAL: signed 32-bit offset from now
            tval = value & 0xFFFFFFFF
            tval -= (1 << 32) if tval & 0x80000000 else 0
            self.cval[t] = (self.clock.ticks() + tval) & ((1 << 64) - 1)
        elif op2 == 1:
            self.ctl[t] = value & 3
        else:
            self.cval[t] = value
        self.update()
        return True

    def update(self) -> None:
        """Push the timers' output levels to the interrupt controller."""
        for t, ppi in ((0, self.PHYS_PPI), (1, self.VIRT_PPI)):
            level = self._istatus(t) and not self.ctl[t] & 2
            if level != self._levels[t]:
                self._levels[t] = level
                self.set_irq(ppi, level)

    def deadline(self) -> int | None:
        now = self.clock.ticks()
        future = [self.cval[t] for t in (0, 1) if self.ctl[t] & 3 == 1 and self.cval[t] > now]
        return min(future) if future else None


class Arm64Engine(CpuEngine):
    """A single-core AArch64 machine (Unicorn starts it at EL1h, DAIF masked)."""

    pc_reg = A.UC_ARM64_REG_PC

    def __init__(
        self,
        clock: VirtualClock,
        bus: Bus | None = None,
        *,
        cpu_model: int = A.UC_CPU_ARM64_A57,
        count_instructions: bool = False,
        idle: str = "skip",
    ) -> None:
        uc = Uc(UC.UC_ARCH_ARM64, UC.UC_MODE_ARM, cpu_model)  # type: ignore[call-arg]
        uc.ctl_set_tlb_mode(UC.UC_TLB_VIRTUAL)  # type: ignore[attr-defined]
        super().__init__(uc, clock, bus, count_instructions, idle)
        self.gic = Gic(on_change=self.kick)
        self.timer = GenericTimer(clock, self.gic.set_irq)
        uc.hook_add(UC.UC_HOOK_INSN, self._on_mrs, None, 1, 0, A.UC_ARM64_INS_MRS)
        uc.hook_add(UC.UC_HOOK_INSN, self._on_msr, None, 1, 0, A.UC_ARM64_INS_MSR)
        uc.hook_add(UC.UC_HOOK_INTR, self._on_intr)
        self.sysreg_reads = 0

    # ---- system registers -----------------------------------------------------------
    def _on_mrs(self, uc: Uc, reg: int, cp: Any, _: Any) -> int:
        value = self.timer.read((cp.op0, cp.op1, cp.crn, cp.crm, cp.op2))
        if value is None:
            return 0  # let Unicorn execute it
        self.sysreg_reads += 1
        if reg != A.UC_ARM64_REG_XZR:
            uc.reg_write(reg, value)
        return 1

    def _on_msr(self, uc: Uc, reg: int, cp: Any, _: Any) -> int:
        return 1 if self.timer.write((cp.op0, cp.op1, cp.crn, cp.crm, cp.op2), cp.val) else 0

    # ---- exceptions -----------------------------------------------------------------
    def _on_intr(self, uc: Uc, intno: int, _: Any) -> None:
        pc = uc.reg_read(A.UC_ARM64_REG_PC)
        if intno in (EXCP_HVC, EXCP_SMC) and self._psci(uc):
            return
        if intno == EXCP_UDEF and self.ram_at(pc, 4) is not None:
            # Without EL2/EL3 Unicorn makes HVC/SMC undefined; the pc is at the instruction.
            insn = int.from_bytes(uc.mem_read(pc, 4), "little")
            if insn & 0xFFE0001C == 0xD4000000 and insn & 3 in (2, 3) and self._psci(uc):
                uc.reg_write(A.UC_ARM64_REG_PC, pc + 4)
                return
        raise UnhandledTrap(
            EXCEPTION_NAMES.get(intno, f"exception {intno}"),
            pc,
            "Unicorn does not deliver AArch64 exceptions to the guest",
        )

    def _psci(self, uc: Uc) -> bool:
        fn = uc.reg_read(A.UC_ARM64_REG_X0) & 0xFFFFFFFF
        if fn == PSCI_VERSION:
            result = 0x00010000  # 1.0
        elif fn == PSCI_FEATURES:
            arg = uc.reg_read(A.UC_ARM64_REG_X1) & 0xFFFFFFFF
            ok = arg in (PSCI_VERSION, PSCI_FEATURES, PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET)
            result = 0 if ok else PSCI_NOT_SUPPORTED
        elif fn == PSCI_SYSTEM_OFF:
            self.guest_exit(0, "poweroff")
            result = 0
        elif fn == PSCI_SYSTEM_RESET:
            self.guest_exit(0, "reset")
            result = 0
        elif fn >> 24 in (0x84, 0xC4):
            result = PSCI_NOT_SUPPORTED
        else:
            return False
        uc.reg_write(A.UC_ARM64_REG_X0, result)
        self.traps["psci"] += 1
        return True

    def _service(self) -> None:
        self.timer.update()
        if not self.gic.irq_line():
            return
        uc = self.uc
        pstate = uc.reg_read(A.UC_ARM64_REG_PSTATE)
        if pstate & PSTATE_I:
            return
        el, spsel = (pstate >> 2) & 3, pstate & 1
        if el != 1:
            raise UnhandledTrap("IRQ", self.pc, f"IRQ injection from EL{el} is not implemented")
        vbar = uc.reg_read(A.UC_ARM64_REG_VBAR_EL1)
        target = vbar + (0x280 if spsel else 0x080)
        if not self.is_executable(target):
            raise UnhandledTrap("IRQ", self.pc, f"VBAR_EL1={vbar:#x} is not executable memory")
        if not spsel:  # EL1t -> EL1h: SP_EL0 is the live SP now
            uc.reg_write(A.UC_ARM64_REG_SP_EL0, uc.reg_read(A.UC_ARM64_REG_SP))
            uc.reg_write(A.UC_ARM64_REG_SP, uc.reg_read(A.UC_ARM64_REG_SP_EL1))
        elr = self.pc
        uc.reg_write(A.UC_ARM64_REG_ELR_EL1, elr)
        uc.reg_write(A.UC_ARM64_REG_PSTATE, (pstate & ~0x3CF) | DAIF | 0x5)
        # SPSR_EL1 has no register id in Unicorn: write it as a system register,
        # which also makes Unicorn rebuild its cached flags after the PSTATE change.
        uc.cpr_write(*SPSR_EL1, pstate)  # type: ignore[attr-defined]
        uc.reg_write(A.UC_ARM64_REG_PC, target)
        self.traps["interrupt IRQ"] += 1

    def wake_pending(self) -> bool:
        self.timer.update()
        return self.gic.irq_line()

    def next_deadline(self) -> int | None:
        return self.timer.deadline()

    def stopped_in_wfi(self) -> bool:
        pc = self.pc
        return (
            self.ram_at(pc - 4, 4) is not None
            and int.from_bytes(self.uc.mem_read(pc - 4, 4), "little") == WFI
        )

    def block_instructions(self, addr: int, size: int) -> int:
        return max(1, size // 4)

    def _handle_engine_error(self, err: UcError) -> bool:
        return False
