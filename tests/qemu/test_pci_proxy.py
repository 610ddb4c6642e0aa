"""A QEMU PC guest as an initiator (`mmiobus pci-proxy`): Debian's U-Boot for qemu-x86 finds
the function on its PCI bus, and its `mw.b`/`md.b` on the BAR reach a 16550 device process on
the bus, traced with the proxy as the initiator."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from support.devices import start_device
from support.ports import free_port
from support.servers import MMIOBUS, process_env, start_server
from support.wait import wait_for

from .conftest import need_qemu

UBOOT_X86 = Path("/usr/lib/u-boot/qemu-x86/u-boot.rom")
UART16550 = "mmiobus.devices.models.uart16550:Uart16550"


def _need_uboot() -> Path:
    if not UBOOT_X86.exists():
        pytest.skip(f"{UBOOT_X86} is missing: apt-get install u-boot-qemu "
                    "(python3 dev.py test installs it when run as root)")  # fmt: skip
    return UBOOT_X86


class Console:
    """The guest's serial port: QEMU listens on a TCP port; this reads and types."""

    def __init__(self, port: int, proxy: subprocess.Popen[str]) -> None:
        def connected() -> socket.socket | None:
            # A proxy that ended (QEMU failed to start) will never listen: say why at once.
            assert proxy.poll() is None, Path(proxy.log_path).read_text()  # type: ignore[attr-defined]
            return _connect(port)

        self.sock = wait_for(connected, 30, message="QEMU's console never listened")
        self.sock.settimeout(0.2)
        self.seen = b""

    def until(self, text: bytes, timeout: float = 60.0, after: int = 0) -> bytes:
        """Read until ``text`` appears after position ``after``; what was read from there."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[after:]:
            assert time.monotonic() < deadline, self.seen.decode(errors="replace")[-2000:]
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            assert chunk, "QEMU closed the console:\n" + self.seen.decode(errors="replace")
            self.seen += chunk
        return self.seen[after:]

    def command(self, line: str) -> str:
        """Type ``line`` at U-Boot's prompt; what it printed up to the next prompt."""
        mark = len(self.seen)
        self.sock.sendall(line.encode() + b"\n")
        out = self.until(b"\n=> ", after=mark)
        return out.decode(errors="replace")


def _connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return None


def start_proxy(server: str, port: int, *args: str) -> subprocess.Popen[str]:
    log = tempfile.NamedTemporaryFile("w", prefix="mmiobus-pci-", suffix=".log", delete=False)  # noqa: SIM115
    qemu = ["-machine", "pc", "-bios", str(UBOOT_X86), "-display", "none", "-nodefaults",
            "-chardev", f"socket,id=con,host=127.0.0.1,port={port},server=on,wait=on",
            "-serial", "chardev:con"]  # fmt: skip
    proc = subprocess.Popen([MMIOBUS, "pci-proxy", "--server", server, *args, "--", *qemu],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=process_env())  # fmt: skip
    proc.log_path = log.name  # type: ignore[attr-defined]
    return proc


def test_uboot_lists_the_function_and_its_bar_reaches_a_16550_device_process(tmp_path):
    need_qemu("qemu-system-x86_64")
    _need_uboot()
    server = start_server()  # the built-in machine: a 16550's region, uart0, at 0x10000000
    out = tmp_path / "uart.txt"
    out.touch()
    uart = start_device(UART16550, server.tcp, "--claim", "uart0", "--arg", f"output=file:{out}",
                        "--arg", "input=none")  # fmt: skip
    port = free_port()
    recording = tmp_path / "trace.jsonl"
    trace = subprocess.Popen([MMIOBUS, "trace", "--server", server.tcp, "--initiator", "pci-proxy",
                              "--count", "2", "--format", "jsonl", "--out", str(recording)],
                             env=process_env(), stderr=subprocess.PIPE, text=True)  # fmt: skip
    proxy = start_proxy(server.tcp, port, "--bar", "0=0x10000000:16", "--pci-addr", "5",
                        "--vendor", "0x1234", "--device-id", "0x11e9", "--class", "0x070002")  # fmt: skip
    try:
        assert proxy.stdout is not None
        assert "starting QEMU" in proxy.stdout.readline()
        console = Console(port, proxy)
        console.until(b"Hit any key to stop autoboot")
        console.sock.sendall(b"\n")
        console.until(b"=> ")
        listing = console.command("pci")
        assert re.search(r"00\.05\.00\s+0x1234\s+0x11e9\s+Simple comm\. controller", listing), (
            listing
        )
        bars = console.command("pci bar 0.5.0")
        m = re.search(r"^\s*0\s+0x([0-9a-f]+)\s+0x0*10\s+32\s+MEM", bars, re.M)
        assert m is not None, bars
        bar0 = int(m[1], 16)
        console.command(f"mw.b {bar0:x} 41")  # THR: the 16550 device process prints "A"
        wait_for(lambda: out.read_text() == "A", 30, message=lambda: repr(out.read_text()))
        dump = console.command(f"md.b {bar0:x} 8")
        line = next(ln for ln in dump.splitlines() if ln.startswith(f"{bar0:08x}:"))
        values = bytes.fromhex(line.split(":", 1)[1].strip().split("  ")[0])
        # RBR, IER, IIR ("no interrupt pending"), LCR, MCR, LSR ("transmitter empty"), ...
        assert len(values) == 8 and values[2] == 0x01 and values[5] == 0x60, dump
        assert trace.wait(30) == 0, trace.stderr.read() if trace.stderr else ""
        events = [json.loads(line) for line in recording.read_text().splitlines()]
        assert [e["initiator"] for e in events] == ["pci-proxy", "pci-proxy"]
        assert events[0]["region"] == "uart0" and events[0]["addr"] == 0x10000000
    finally:
        proxy.terminate()
        proxy.wait(20)
        if trace.poll() is None:
            trace.kill()
        uart.stop()
        assert server.stop() == 0, server.log()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bar", "0=0x10000000:24"], "BAR 0: a memory BAR is a power of two from 16 to "
                                       "0x80000000 bytes, not 0x18"),
        (["--bar", "7=0x10000000:16"], "BAR 7: a BAR is numbered 0 to 5"),
        (["--bar", "0=0x10000000:16", "--vendor", "0x12345"], "vendor 0x12345 does not fit in 16 bits"),
        (["--bar", "0=0x10000000:16", "--", "no-such-qemu"], "no-such-qemu is not installed"),
    ],
    ids=["bar-size", "bar-index", "vendor", "no-qemu"],
)  # fmt: skip
def test_bad_functions_are_refused_in_one_line_before_anything_starts(args, says):
    out = subprocess.run([MMIOBUS, "pci-proxy", "--server", "127.0.0.1:1", *args],
                         capture_output=True, text=True, timeout=60, env=process_env())  # fmt: skip
    assert out.returncode == 1, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("mmiobus pci-proxy: error: ") and says in line, out.stderr


def test_a_missing_x86_qemu_names_the_debian_package(tmp_path):
    out = subprocess.run([MMIOBUS, "pci-proxy", "--server", "127.0.0.1:1", "--bar", "0=0:16"],
                         capture_output=True, text=True, timeout=60,
                         env=process_env({"PATH": str(tmp_path)}))  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "mmiobus pci-proxy: error: qemu-system-x86_64 is not installed: apt-get install "
        "qemu-system-x86"
    )
