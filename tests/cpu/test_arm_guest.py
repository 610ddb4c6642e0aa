"""A tiny AArch64 guest (machine code assembled once with llvm-mc, source below):
generic-timer interrupts through the GICv2, hand-injected IRQ entry, PSCI power-off."""

from __future__ import annotations

from mmiobus.cpu import ExitReason
from mmiobus.cpu.arm64 import Arm64Engine
from mmiobus.cpu.standalone import standalone
from mmiobus.machine import Machine
from unicorn import arm64_const as A

# _start (RAM+0x100000): vbar_el1 = vectors; x19 = 0 (count), x20 = 3 (wanted);
#   GICD_CTLR = 1; ISENABLER0 = 1 << 30; GICC_PMR = 0xff; GICC_CTLR = 1;
#   cntp_tval_el0 = 62500 (1 ms at 62.5 MHz); cntp_ctl_el0 = 1; msr daifclr, #2
# loop: wfi; cmp x19, x20; b.lo loop; mrs x21, cntpct_el0; x0 = 0x84000008; hvc #0; b .
# vectors + 0x280 (IRQ, EL1h): x4 = GICC_IAR; x22 = x4; x19 += 1;
#   cntp_tval_el0 = 62500; GICC_EOIR = x4; eret
MAIN = bytes.fromhex(
    "0040001000c018d5130080d2740080d20100a1d222008052220000b90200a852220001b92300a1d2e21f8052"
    "620400b922008052620000b982849ed202e21bd5220080d222e21bd5ff4203d57f2003d57f0214ebc3ffff54"
    "35e03bd50080b0d2000180f2020000d400000014"
)
IRQ_HANDLER = bytes.fromhex("2300a1d2640c40b9f60304aa7306009182849ed202e21bd5641000b9e0039fd6")
CODE = 0x40100000  # in RAM, clear of the device tree at 0x40000000


def test_timer_irqs_are_injected_and_psci_powers_off():
    board, _uart = standalone(Machine.builtin("arm-virt"))
    m = board.engine
    assert isinstance(m, Arm64Engine)
    board.load(CODE, MAIN, "program")
    board.load(CODE + 0x800 + 0x280, IRQ_HANDLER, "IRQ vector")  # `adr x0, vectors` = CODE + 0x800
    m.pc = CODE
    result = m.run(timeout_seconds=20)
    assert result.reason == ExitReason.GUEST_EXIT and result.exit_kind == "poweroff"
    assert m.uc.reg_read(A.UC_ARM64_REG_X19) == 3
    assert m.uc.reg_read(A.UC_ARM64_REG_X22) == 30  # IAR returned PPI 30
    assert result.traps["interrupt IRQ"] == 3 and result.traps["psci"] == 1
    assert m.uc.reg_read(A.UC_ARM64_REG_X21) >= 3 * 62500  # the counter moved 3 periods
    assert result.accesses["gicc"] >= 6
