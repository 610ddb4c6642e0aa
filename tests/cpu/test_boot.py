"""Real firmware on the standalone boards: OpenSBI + U-Boot on RISC-V virt, U-Boot on Arm virt,
typed at through the console model."""

from __future__ import annotations

import time
from typing import Any

from mmiobus.cpu import ExitReason
from mmiobus.cpu.arm64 import Arm64Engine
from mmiobus.cpu.board import Board
from mmiobus.cpu.standalone import standalone
from mmiobus.machine import Machine
from unicorn import riscv_const as R

SLICE_SECONDS = 0.05  # how long the guest runs between looks at its output


class Serial:
    """The guest's console as a person at a terminal sees it: runs the guest until some text
    shows, types. (The guest's clock pauses between runs; the guest does not notice.)"""

    def __init__(self, board: Board, model: Any) -> None:
        self.board, self.model = board, model
        self.seen = 0  # what wait_for already returned

    def text(self) -> str:
        return self.model.transmitted.decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """Run the guest until ``text`` appears after what was already returned; return the
        output from there to the end of ``text``."""
        wanted = text.encode()
        deadline = time.monotonic() + timeout
        while True:
            out = bytes(self.model.transmitted[self.seen :])
            at = out.find(wanted)
            if at >= 0:
                self.seen += at + len(wanted)
                return out[: at + len(wanted)].decode(errors="replace")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} did not show within {timeout} s; output:\n{out.decode(errors='replace')}"
                )
            self.board.engine.run(timeout_seconds=SLICE_SECONDS)

    def type(self, text: str) -> None:
        self.model.receive(text.encode())

    def stop_autoboot(self) -> None:
        """Type a key at U-Boot's countdown instead of waiting it out; wait for the prompt."""
        self.wait_for("Hit any key to stop autoboot")
        self.type(" ")
        self.wait_for("=> ")


def test_opensbi_stops_at_payload_entry(opensbi):
    board, uart = standalone(Machine.builtin("riscv-virt"))
    board.load(0x80000000, opensbi, "firmware")
    result = board.engine.run(until_pc=0x80200000, timeout_seconds=30)
    text = uart.transmitted.decode()
    assert result.reason == ExitReason.REACHED and result.pc == 0x80200000
    assert "OpenSBI v1.1" in text
    assert "Platform Console Device   : uart8250" in text
    assert "Platform Timer Device     : aclint-mtimer @ 10000000Hz" in text
    assert "Domain0 Next Mode         : S-mode" in text
    uc = board.engine.uc
    assert uc.reg_read(R.UC_RISCV_REG_PRIV) == 1  # S-mode at the payload
    assert uc.reg_read(R.UC_RISCV_REG_A1) == 0x82200000  # the tree OpenSBI passes on
    # the UART is reached through the bus window; the CLINT is the CPU's own
    assert result.accesses["bus"] > 3000 and result.accesses["clint"] >= 3
    assert result.traps["illegal instruction"] == 5  # the five CSR probes


def test_uboot_riscv_prompt_and_commands(opensbi, uboot_riscv):
    board, uart = standalone(Machine.builtin("riscv-virt"))
    board.load(0x80000000, opensbi, "firmware")
    board.load(0x80200000, uboot_riscv, "payload")
    serial = Serial(board, uart)
    serial.stop_autoboot()
    text = serial.text()
    assert "OpenSBI v1.1" in text and "U-Boot 2023.01" in text and "DRAM:  128 MiB" in text
    serial.type("version\n")
    out = serial.wait_for("=> ")
    assert "U-Boot 2023.01" in out and "riscv64-linux-gnu-gcc" in out
    serial.type("echo hi from the bus\n")
    assert "hi from the bus" in serial.wait_for("=> ").splitlines()[1]
    serial.type("poweroff\n")  # syscon-poweroff -> sifive_test
    result = board.engine.run(timeout_seconds=30)
    assert result.reason == ExitReason.GUEST_EXIT and result.exit_kind == "poweroff"


def test_uboot_arm64_prompt_and_commands(uboot_arm64):
    board, uart = standalone(Machine.builtin("arm-virt"))
    board.load(0, uboot_arm64, "firmware")  # flash
    engine = board.engine
    assert isinstance(engine, Arm64Engine)
    serial = Serial(board, uart)
    serial.stop_autoboot()
    assert "U-Boot 2023.01" in serial.text() and "DRAM:  128 MiB" in serial.text()
    serial.type("version\n")
    out = serial.wait_for("=> ")
    assert "aarch64-linux-gnu-gcc" in out
    serial.type("echo hi\n")
    assert serial.wait_for("=> ").splitlines()[1].strip() == "hi"
    assert engine.sysreg_reads > 0  # U-Boot's timer reads went to our generic timer
    serial.type("reset\n")  # PSCI SYSTEM_RESET through hvc
    result = engine.run(timeout_seconds=30)
    assert result.reason == ExitReason.GUEST_EXIT and result.exit_kind == "reset"
