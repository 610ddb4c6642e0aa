"""What goes wrong around a CPU front-end is one clear line and a non-zero exit, and the bus
carries on: a missing firmware, the wrong CPU, a guest that jumps nowhere or runs garbage, the
bus going away."""

from __future__ import annotations

import signal
import struct

import pytest
from mmiobus.client import Bus
from support.command_line import mmiobus
from support.devices import start_device
from support.firmware import OPENSBI, UBOOT_RISCV_SMODE, need, start_cpu
from support.servers import start_server
from support.wait import wait_for

UART16550 = "mmiobus.devices.models.uart16550:Uart16550"


def _program(tmp_path, *words: int):
    path = tmp_path / "guest.bin"
    path.write_bytes(b"".join(struct.pack("<I", w) for w in words))
    return path


@pytest.fixture
def riscv_bus():
    """A riscv-virt bus with its UART attached (the CPU starts once it is)."""
    server = start_server("--machine", "riscv-virt")
    uart = start_device(UART16550, server.tcp, "--claim", "uart0", "--arg", "output=none",
                        "--arg", "input=none")  # fmt: skip
    yield server
    uart.stop()
    assert server.stop() == 0, server.log()


def _one_error_line(log: str) -> str:
    errors = [line for line in log.splitlines() if "error:" in line]
    assert len(errors) == 1, log
    assert "Traceback" not in log, log
    return errors[0]


def test_missing_firmware_is_one_line(tmp_path):
    server = start_server("--machine", "riscv-virt")
    try:
        status, _out, log = start_cpu(server.tcp, "--firmware", str(tmp_path / "nope.bin")).wait()
        assert status == 1
        assert "cannot read the firmware" in _one_error_line(log)
    finally:
        assert server.stop() == 0


def test_a_machine_without_that_cpu_or_arch_is_one_line(tmp_path):
    firmware = _program(tmp_path, 0)
    server = start_server()  # the default machine has no CPU
    try:
        status, _out, log = start_cpu(server.tcp, "--firmware", str(firmware)).wait()
        assert status == 1
        line = _one_error_line(log)
        assert "has no CPU named 'cpu0'" in line and "--machine riscv-virt" in line
    finally:
        assert server.stop() == 0
    server = start_server("--machine", "riscv-virt")
    try:
        status, _out, log = start_cpu(
            server.tcp, "--firmware", str(firmware), "--arch", "aarch64"
        ).wait()
        assert status == 1
        assert "cpu0 is riscv64, not aarch64" in _one_error_line(log)
    finally:
        assert server.stop() == 0


def test_a_guest_jumping_to_unmapped_memory_reports_pc_and_address(tmp_path, riscv_bus):
    # lui t0, 0x40000 ; jalr x0, 0(t0): to 0x40000000, where riscv-virt has nothing
    firmware = _program(tmp_path, 0x400002B7, 0x00028067)
    status, _out, log = start_cpu(riscv_bus.tcp, "--firmware", str(firmware)).wait()
    assert status == 1
    line = _one_error_line(log)
    assert "fetch" in line and "unmapped address 0x40000000" in line and "pc=" in line
    with Bus(riscv_bus.tcp) as bus:  # the bus carries on
        assert bus.read(0x80000000, 8) == firmware.read_bytes()


def test_an_illegal_instruction_without_a_trap_handler_reports_pc(tmp_path, riscv_bus):
    firmware = _program(tmp_path, 0x00000013, 0x00000000)  # nop, then an illegal all-zero word
    status, _out, log = start_cpu(riscv_bus.tcp, "--firmware", str(firmware)).wait()
    assert status == 1
    line = _one_error_line(log)
    assert "unhandled illegal instruction at pc=0x80000004" in line
    assert "mtvec" in line


def test_the_bus_going_away_ends_the_run_with_one_line(tmp_path):
    server = start_server("--machine", "riscv-virt")
    out = tmp_path / "console.txt"
    out.touch()
    uart = start_device(UART16550, server.tcp, "--claim", "uart0", "--no-reconnect",
                        "--arg", f"output=file:{out}", "--arg", "input=none")  # fmt: skip
    cpu = start_cpu(server.tcp, "--firmware", str(need(OPENSBI)), "--payload",
                    str(need(UBOOT_RISCV_SMODE)), "--timeout", "60")  # fmt: skip
    try:
        wait_for(lambda: "U-Boot" in out.read_text(), 60, message=lambda: cpu.log())
        server.stop(sig=signal.SIGKILL)
        status, _out, log = cpu.wait(60)
        assert status != 0
        line = _one_error_line(log)
        assert "went away" in line, log
    finally:
        cpu.kill()
        uart.kill()


@pytest.mark.parametrize("command", [["cpu", "run"], ["serve"]])
@pytest.mark.parametrize(
    ("value", "says"),
    [("200000", "longer than 100000 us (0 turns polling off)"), ("-5", "negative")],
)
def test_a_polling_window_out_of_range_is_a_usage_error(command, value, says):
    out = mmiobus(*command, "--poll-max-us", value)
    assert out.returncode == 2
    assert "--poll-max-us" in out.stderr and says in out.stderr
    assert "Traceback" not in out.stderr
