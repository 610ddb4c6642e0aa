"""Real firmware on the bus: `mmiobus cpu run` boots Debian's OpenSBI and U-Boot with their
serial ports served by device processes, as the README shows."""

from __future__ import annotations

import json
import re
import socket
import subprocess

from mmiobus.client import Bus
from support.devices import start_device
from support.firmware import OPENSBI, UBOOT_ARM64, UBOOT_RISCV_SMODE, need, start_cpu
from support.ports import free_port
from support.servers import MMIOBUS, process_env, start_server
from support.wait import wait_for

UART16550 = "mmiobus.devices.models.uart16550:Uart16550"
MTIME = 0x0200BFF8  # riscv-virt's ACLINT mtime
PL011 = "mmiobus.devices.models.pl011:Pl011"
SUMMARY = re.compile(
    r"^mmiobus cpu cpu0: (?P<reason>\w+) at pc=(?P<pc>0x[0-9a-f]+): (?P<insns>[\d,]+) "
    r"instructions, (?P<accesses>[\d,]+) MMIO accesses"
)


def _console(tmp_path, server, model, tcp_port=None):
    out = tmp_path / "console.txt"
    out.touch()
    args = ["--claim", "uart0", "--arg", f"output=file:{out}"]
    args += ["--arg", f"input=tcp:127.0.0.1:{tcp_port}" if tcp_port else "input=none"]
    return start_device(model, server.tcp, *args), out


def test_opensbi_prints_through_the_uart_device_and_stops_at_the_payload(tmp_path):
    firmware = need(OPENSBI)
    server = start_server("--machine", "riscv-virt")
    uart = None
    try:
        uart, out = _console(tmp_path, server, UART16550)
        cpu = start_cpu(server.tcp, "--firmware", str(firmware), "--until", "0x80200000")
        status, stdout, log = cpu.wait()
        assert status == 0, log
        summary = SUMMARY.match(stdout.strip().splitlines()[-1])
        assert summary is not None, stdout
        assert summary["reason"] == "reached" and int(summary["pc"], 16) == 0x80200000
        assert int(summary["insns"].replace(",", "")) > 1_000_000
        text = out.read_text()
        assert "OpenSBI v1.1" in text
        assert "Platform Console Device   : uart8250" in text
        assert "Domain0 Next Address      : 0x0000000080200000" in text
        with Bus(server.tcp) as bus:  # the guest's RAM is the bus's
            assert bus.read(0x80000000, 4) == firmware.read_bytes()[:4]
    finally:
        if uart is not None:
            uart.stop()
        assert server.stop() == 0, server.log()


def _type_when(out, console: socket.socket, seen: str, typed: bytes, timeout=60.0) -> str:
    wait_for(lambda: seen in out.read_text(errors="replace"), timeout,
             message=lambda: f"{seen!r} not printed; the console shows:\n{out.read_text()}")  # fmt: skip
    console.sendall(typed)
    return out.read_text(errors="replace")


def _boot_to_a_prompt_and_run_a_command(tmp_path, machine, model, firmware, payload=None):
    server = start_server("--machine", machine)
    uart = None
    try:
        port = free_port()
        uart, out = _console(tmp_path, server, model, port)
        args = ["--firmware", str(firmware), "--timeout", "120"]
        if payload is not None:
            args += ["--payload", str(payload)]
        cpu = start_cpu(server.tcp, *args)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as console:
            _type_when(out, console, "Hit any key to stop autoboot", b"\n")
            _type_when(out, console, "=> ", b"echo mmiobus-says-hello\n")
            wait_for(lambda: out.read_text().count("mmiobus-says-hello") >= 2, 60,
                     message=lambda: out.read_text()[-500:])  # fmt: skip
        if machine == "riscv-virt":  # clients see the timer the guest sees, served by the CPU
            with Bus(server.tcp) as bus:
                first = int.from_bytes(bus.read(MTIME, 8), "little")
                wait_for(lambda: int.from_bytes(bus.read(MTIME, 8), "little") > first)
        cpu.interrupt()  # Ctrl-C: a clean stop, with the summary
        status, stdout, log = cpu.wait()
        assert status == 0, log
        summary = SUMMARY.match(stdout.strip().splitlines()[-1])
        assert summary is not None and summary["reason"] == "stopped", stdout
        text = out.read_text()
        assert "U-Boot 2023.01" in text
        return text
    finally:
        if uart is not None:
            uart.stop()
        assert server.stop() == 0, server.log()


def test_uboot_on_riscv_reaches_its_prompt_and_runs_what_is_typed(tmp_path):
    text = _boot_to_a_prompt_and_run_a_command(
        tmp_path, "riscv-virt", UART16550, need(OPENSBI), need(UBOOT_RISCV_SMODE)
    )
    assert "OpenSBI v1.1" in text and "serial@10000000" in text


def test_uboot_on_arm64_prints_through_the_pl011_device(tmp_path):
    text = _boot_to_a_prompt_and_run_a_command(tmp_path, "arm-virt", PL011, need(UBOOT_ARM64))
    assert "pl011@9000000" in text


def test_trace_shows_the_guests_accesses_with_the_cpu_as_initiator(tmp_path):
    firmware = need(OPENSBI)
    server = start_server("--machine", "riscv-virt")
    uart = None
    try:
        uart, _out = _console(tmp_path, server, UART16550)
        recording = tmp_path / "trace.jsonl"
        trace = subprocess.Popen(
            [MMIOBUS, "trace", "--server", server.tcp, "--initiator", "cpu0", "--region",
             "uart0", "--count", "50", "--format", "jsonl", "--out", str(recording)],
            env=process_env(), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(lambda: _subscribed(server), message="the trace never subscribed")
        cpu = start_cpu(server.tcp, "--firmware", str(firmware), "--until", "0x80200000")
        assert cpu.wait()[0] == 0
        assert trace.wait(60) == 0, trace.stderr.read() if trace.stderr else ""
        events = [json.loads(line) for line in recording.read_text().splitlines()]
        assert len(events) == 50
        assert {e["initiator"] for e in events} == {"cpu0"}
        assert {e["region"] for e in events} == {"uart0"}
        assert {e["addr"] for e in events} <= set(range(0x10000000, 0x10000008))
    finally:
        if uart is not None:
            uart.stop()
        assert server.stop() == 0, server.log()


def _subscribed(server) -> bool:
    return "trace subscriber joined" in server.log()


def test_opensbi_boots_on_a_cpu_the_server_runs(tmp_path):
    firmware = need(OPENSBI)
    server = start_server(
        "--machine", "riscv-virt", "--cpu", "cpu0", "--firmware", str(firmware),
        "--until", "0x80200000",
    )  # fmt: skip
    uart = None
    try:
        wait_for(lambda: "CPU waits for its devices" in server.log())
        uart, out = _console(tmp_path, server, UART16550)
        wait_for(lambda: "CPU stopped" in server.log(), 60, message=server.log)
        assert "reached at pc=0x80200000" in server.log()
        assert "OpenSBI v1.1" in out.read_text()
        with Bus(server.tcp) as bus:
            devices = {d.name: d for d in bus.devices()}
        assert devices["cpu0"].in_process
        assert set(devices["cpu0"].regions) == {"aclint.swi", "aclint.mtimer", "plic0", "test0"}
        assert devices["cpu0"].accesses > 3000
    finally:
        if uart is not None:
            uart.stop()
        assert server.stop() == 0, server.log()
