"""QEMU's device models as bus devices (`mmiobus device qemu`): real QEMU processes serve bus
regions over qtest, firmware on the CPU front-end talks to them, their interrupt lines are bus
lines, and QEMU lives and dies with the device."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
from mmiobus.client import Bus, BusFault
from support.firmware import OPENSBI, UBOOT_ARM64, need, start_cpu
from support.ports import free_port
from support.servers import MMIOBUS, process_env, start_server
from support.wait import wait_for

from .conftest import need_qemu, qemu_pid, start_qemu_device

PL011 = 0x9000000
PL011_CR, PL011_IMSC, PL011_ICR, PL011_PERIPHID0 = 0x30, 0x38, 0x44, 0xFE0
PL011_TX = 0x20  # the transmit interrupt's bit in IMSC, RIS, MIS and ICR
UART_SCR = 0x10000007  # riscv-virt's 16550: its scratch register


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited too: reaped by nobody we know of, but gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # the state, after the name
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_opensbi_prints_through_qemus_16550_serving_uart0(tmp_path):
    need_qemu("qemu-system-riscv64")
    firmware = need(OPENSBI)
    server = start_server("--machine", "riscv-virt")
    console = tmp_path / "console.txt"
    dev = None
    try:
        dev = start_qemu_device(server.tcp, "--machine", "virt", "--claim", "uart0",
                                "--serial", f"file:{console}")  # fmt: skip
        cpu = start_cpu(server.tcp, "--firmware", str(firmware), "--until", "0x80200000")
        status, _stdout, log = cpu.wait()
        assert status == 0, log
        text = console.read_text()
        assert "OpenSBI v1.1" in text
        assert "Platform Console Device   : uart8250" in text
        assert "Domain0 Next Address      : 0x0000000080200000" in text
        with Bus(server.tcp) as bus:
            (uart,) = [d for d in bus.devices() if d.name == "uart0"]
        assert uart.accesses > 1000  # every character and status poll crossed to QEMU
    finally:
        if dev is not None:
            dev.stop()
        assert server.stop() == 0, server.log()


def test_uboot_on_arm_virt_runs_a_command_through_qemus_pl011():
    need_qemu("qemu-system-aarch64")
    firmware = need(UBOOT_ARM64)
    server = start_server("--machine", "arm-virt")
    port = free_port()
    dev = cpu = None
    try:
        dev = start_qemu_device(server.tcp, "--arch", "aarch64", "--machine", "virt",
                                "--claim", "uart0", "--serial", f"tcp:127.0.0.1:{port}")  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=10) as console:
            cpu = start_cpu(server.tcp, "--firmware", str(firmware), "--timeout", "120")
            seen = _converse(console, [(b"Hit any key", b"\n"), (b"=> ", b"echo hello-from-qemu\n")],
                             until=lambda text: text.count(b"hello-from-qemu") >= 2)  # fmt: skip
        assert b"U-Boot 2023.01" in seen and b"pl011@9000000" in seen
        cpu.interrupt()
        assert cpu.wait()[0] == 0
    finally:
        if cpu is not None:
            cpu.kill()
        if dev is not None:
            dev.stop()
        assert server.stop() == 0, server.log()


def _converse(console: socket.socket, script, until, timeout: float = 90.0) -> bytes:
    """Read the console; when a prompt of ``script`` appears, type its answer (once each);
    return what was read once ``until`` holds."""
    console.settimeout(0.2)
    seen, step = b"", 0
    deadline = time.monotonic() + timeout
    while not until(seen):
        assert time.monotonic() < deadline, f"the console shows:\n{seen.decode(errors='replace')}"
        try:
            seen += console.recv(4096)
        except TimeoutError:
            pass
        if step < len(script) and script[step][0] in seen:
            console.sendall(script[step][1])
            step += 1
    return seen


def test_irqs_watch_shows_the_pl011_line_rise_and_fall_as_registers_are_written():
    need_qemu("qemu-system-aarch64")
    server = start_server("--machine", "arm-virt")
    dev = None
    watch = None
    try:
        dev = start_qemu_device(server.tcp, "--arch", "aarch64", "--machine", "virt",
                                "--claim", "uart0", "--irq-controller", "arm_gic",
                                "--irq", "1=irq", "--serial", "none")  # fmt: skip
        watch = subprocess.Popen([MMIOBUS, "irqs", "--watch", "uart0.*", "-s", server.tcp],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=process_env())  # fmt: skip
        printed: list[str] = []
        reader = threading.Thread(target=lambda: printed.extend(watch.stdout), daemon=True)
        reader.start()
        with Bus(server.tcp) as bus:
            assert bus.read_u32(PL011 + PL011_PERIPHID0) == 0x11  # QEMU's PL011 answers
            bus.write_u32(PL011 + PL011_CR, 0x301)  # enabled, transmit and receive
            bus.write_u32(PL011 + PL011_IMSC, PL011_TX)
            # The watch subscribes in its own time: toggle until it has seen a rise and a fall.
            for _ in range(50):
                bus.write_u32(PL011, ord("A"))  # transmitting raises the TX interrupt
                wait_for(lambda: bus.irqs("uart0.irq").get("uart0.irq"), 10)
                bus.write_u32(PL011 + PL011_ICR, PL011_TX)  # cleared
                wait_for(lambda: bus.irqs("uart0.irq").get("uart0.irq") is False, 10)
                if _rise_then_fall([line.strip() for line in printed]):
                    break
                time.sleep(0.1)
        watch.send_signal(signal.SIGINT)
        watch.wait(10)
        reader.join(10)
        lines = [line.strip() for line in printed]
        assert _rise_then_fall(lines), lines
        assert set(lines) == {"uart0.irq 1", "uart0.irq 0"}
        assert all(a != b for a, b in itertools.pairwise(lines)), lines  # changes only
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
        if dev is not None:
            dev.stop()
        assert server.stop() == 0, server.log()


def _rise_then_fall(lines: list[str]) -> bool:
    return any(a == "uart0.irq 1" and b == "uart0.irq 0" for a, b in itertools.pairwise(lines))


def test_a_registered_window_serves_qemus_registers_and_traces_like_any_region():
    need_qemu("qemu-system-aarch64")
    server = start_server("--machine", "arm-virt")
    dev = None
    try:
        dev = start_qemu_device(server.tcp, "--arch", "aarch64", "--machine", "virt",
                                "--at", "0x50000000:4K=0x9000000", "--name", "qpl011",
                                "--serial", "none")  # fmt: skip
        with Bus(server.tcp) as bus:
            ids = [bus.read_u32(0x50000000 + 0xFE0 + 4 * i) & 0xFF for i in range(4)]
            assert ids == [0x11, 0x10, 0x14, 0x00]  # the PL011's PrimeCell peripheral id
            regions = {r.id: r for r in bus.topology(flat_views=False).regions}
            assert regions["qpl011"].device == "qpl011"
        dev.stop()
        with Bus(server.tcp) as bus:  # a registered region goes with its device
            assert "qpl011" not in {r.id for r in bus.topology(flat_views=False).regions}
    finally:
        if dev is not None:
            dev.stop()
        assert server.stop() == 0, server.log()


def test_resetting_the_device_resets_qemus_registers():
    """`reset-device` on a QEMU device resets QEMU's machine: the 16550's scratch register,
    written through the bus, reads its reset value (0) afterwards."""
    need_qemu("qemu-system-riscv64")
    server = start_server("--machine", "riscv-virt")
    dev = None
    try:
        dev = start_qemu_device(server.tcp, "--machine", "virt", "--claim", "uart0",
                                "--serial", "none")  # fmt: skip
        with Bus(server.tcp) as bus:
            bus.write(UART_SCR, b"\x5a")
            assert bus.read(UART_SCR, 1) == b"\x5a"
            bus.reset_device("uart0")
            assert bus.read(UART_SCR, 1) == b"\x00"
            bus.write(UART_SCR, b"\x3c")  # QEMU serves on after its reset
            assert bus.read(UART_SCR, 1) == b"\x3c"
    finally:
        if dev is not None:
            dev.stop()
        assert server.stop() == 0, server.log()


def test_stopping_the_device_stops_qemu():
    need_qemu("qemu-system-riscv64")
    server = start_server("--machine", "riscv-virt")
    try:
        dev = start_qemu_device(server.tcp, "--machine", "virt", "--claim", "uart0",
                                "--serial", "none")  # fmt: skip
        pid = qemu_pid(dev)
        assert _alive(pid)
        assert dev.stop() == 0
        wait_for(lambda: not _alive(pid), 10, message="QEMU outlived its device")
    finally:
        assert server.stop() == 0, server.log()


def test_qemu_going_away_ends_the_session_and_the_region_answers_its_absent_rule():
    need_qemu("qemu-system-riscv64")
    server = start_server("--machine", "riscv-virt")
    try:
        dev = start_qemu_device(server.tcp, "--machine", "virt", "--claim", "uart0",
                                "--serial", "none")  # fmt: skip
        with Bus(server.tcp) as bus:
            assert bus.read(0x10000005, 1) == b"\x60"  # QEMU's 16550: transmitter empty
            os.kill(qemu_pid(dev), signal.SIGKILL)
            assert dev.proc.wait(30) == 1
            absent = {r.id: r.absent for r in bus.topology(flat_views=False).regions}["uart0"]
            assert absent == "error"
            with pytest.raises(BusFault) as fault:
                bus.read(0x10000005, 1)
            assert "ERROR" in str(fault.value)
            assert [d.name for d in bus.devices()] == []
        assert "QEMU went away" in dev.log()
        assert "qemu-system-riscv64 was killed by signal 9" in dev.log()
    finally:
        assert server.stop() == 0, server.log()


def test_a_device_killed_outright_takes_qemu_with_it():
    need_qemu("qemu-system-riscv64")
    server = start_server("--machine", "riscv-virt")
    try:
        dev = start_qemu_device(server.tcp, "--machine", "virt", "--claim", "uart0",
                                "--serial", "none")  # fmt: skip
        pid = qemu_pid(dev)
        dev.kill()  # SIGKILL: no chance to stop QEMU itself
        wait_for(lambda: not _alive(pid), 10, message="QEMU outlived its device")
    finally:
        assert server.stop() == 0, server.log()
