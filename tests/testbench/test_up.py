"""`mmiobus up` end to end: a bench's processes start in order, their output comes prefixed,
the bench ends when its expectations are met (exit 0) and every way it can fail says why."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from support.firmware import OPENSBI, need
from support.rtl import need_rtl
from support.servers import MMIOBUS, process_env

ROOT = Path(__file__).resolve().parents[2]
UART = "mmiobus.devices.models.uart16550:Uart16550"

# A client that prints through the UART and leaves a value in RAM, as a bench's command.
HELLO = """\
import sys
from mmiobus.client import Bus
with Bus(sys.argv[1]) as bus:
    for ch in b"hello from the bench\\n":
        bus.write(0x10000000, bytes([ch]))
    bus.write_u32(0x1000, 0x2a)
print("wrote it all")
"""
# A device model that serves, then goes away without a word.
QUITTER = """\
import asyncio, os
from mmiobus.devices import Device

class Quitter(Device):
    size = 0x100
    def start(self):
        print("I will not stay", flush=True)
        asyncio.get_running_loop().call_later(0.3, os._exit, 5)
"""


def _bench(tmp_path: Path, text: str, **files: str) -> Path:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    return path


def _up(bench: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MMIOBUS, "up", str(bench), "--status", "off", *args],
                          capture_output=True, text=True, timeout=timeout, env=process_env())  # fmt: skip


HELLO_BENCH = f"""
bus: {{listen: [127.0.0.1:0]}}
processes:
  uart0: {{kind: device, class: {UART}, claim: uart0, args: {{output: "file:console.txt", input: none}}}}
  hello: {{kind: command, program: [python, hello.py], args: ["{{server}}"]}}
expect:
  timeout: 60s
  console: [{{file: console.txt, text: "hello from the bench"}}, {{process: hello, text: "wrote it all"}}]
  memory: [{{addr: 0x1000, value: 0x2a}}]
  exit: [{{process: hello, code: 0}}]
"""


def test_a_bench_that_does_what_it_expects_exits_0(tmp_path):
    out = _up(_bench(tmp_path, HELLO_BENCH, **{"hello.py": HELLO}))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(ln.startswith("uart0  │ mmiobus device uart0: serving uart0") for ln in lines)
    assert "hello  │ wrote it all" in lines
    assert "up     │ all 4 expectations met" in lines
    # Devices start before commands, and only once the bus listens.
    order = [ln.split("│")[0].strip() for ln in lines if "│" in ln]
    assert order.index("uart0") < order.index("hello")
    bus_line = next(ln for ln in lines if "the bus listens on" in ln)
    assert lines.index(bus_line) < next(i for i, ln in enumerate(lines) if ln.startswith("uart0"))
    assert (tmp_path / "console.txt").read_text() == "hello from the bench\n"


def test_record_keeps_every_access_of_the_run(tmp_path):
    record = tmp_path / "run.jsonl"
    out = _up(_bench(tmp_path, HELLO_BENCH, **{"hello.py": HELLO}), "--record", str(record))
    assert out.returncode == 0, out.stdout + out.stderr
    events = [json.loads(line) for line in record.read_text().splitlines()]
    writes = [e for e in events if e["dir"] == "write" and e["initiator"] == "client"]
    assert len(writes) == len("hello from the bench\n") + 1
    assert writes[-1]["addr"] == 0x1000 and writes[-1]["data"] == "2a000000"


def test_an_expectation_that_times_out_says_what_was_seen_instead(tmp_path):
    text = f"""
bus: {{listen: [127.0.0.1:0]}}
processes:
  uart0: {{kind: device, class: {UART}, claim: uart0, args: {{output: "file:console.txt", input: none}}}}
expect:
  timeout: 1s
  console: [{{file: console.txt, text: "never printed"}}]
  memory: [{{addr: 0x1000, value: 7}}]
"""
    out = _up(_bench(tmp_path, text))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "mmiobus up: error: expectations not met within 1s:",
        "  'never printed' on console.txt's console: it printed nothing",
        "  0x7 (4 bytes) at 0x1000: it held 0x0",
    ]


def test_a_process_that_exits_early_stops_the_bench_with_its_last_lines(tmp_path):
    machine = ("address_spaces: [{name: memory, root: system}]\nregions:\n"
               "  - {name: system, kind: container, size: 4K, subregions: [\n"
               "     {name: q, kind: mmio, size: 0x100, device: quitter}]}\n")  # fmt: skip
    text = """
bus: {config: machine.yaml, listen: [127.0.0.1:0]}
processes:
  quitter: {kind: device, class: "quitter:Quitter", claim: q}
expect: {timeout: 60s, memory: [{addr: 0, value: 1}]}
"""
    started = time.monotonic()
    out = _up(_bench(tmp_path, text, **{"machine.yaml": machine, "quitter.py": QUITTER}))
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert lines[0] == ("mmiobus up: error: quitter exited with status 5 while the bench ran; "
                        "its last lines:")  # fmt: skip
    assert "  quitter │ I will not stay" in lines
    assert time.monotonic() - started < 50  # it did not wait for the expectations' timeout


def test_a_command_that_fails_fails_the_bench(tmp_path):
    text = "bus: {listen: [127.0.0.1:0]}\nprocesses:\n  check: {kind: command, program: [sh, -c, 'echo broken; exit 3']}\n"
    out = _up(_bench(tmp_path, text))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "mmiobus up: error: check failed (exit status 3); its last lines:",
        "  check │ broken",
    ]


def test_a_port_in_use_is_one_line_that_points_at_the_bench(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = _bench(tmp_path, f"bus:\n  listen: [127.0.0.1:{port}]\n")
        out = _up(path)
    assert out.returncode == 1
    assert out.stderr == (f"mmiobus up: error: {path}:2:12: bus.listen[0]: 127.0.0.1:{port} is "
                          "in use (another bus or bench?); stop it, or choose another port "
                          "(port 0: any free one)\n")  # fmt: skip


def _start_up(bench: Path, *args: str) -> subprocess.Popen[str]:
    """`mmiobus up` in a process group of its own, as a shell starts a job at a terminal."""
    return subprocess.Popen([MMIOBUS, "up", str(bench), "--status", "off", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=process_env(), process_group=0)  # fmt: skip


def _wait_running(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    seen = []
    while True:
        line = proc.stdout.readline()
        assert line, f"up ended before running: {seen}"
        seen.append(line)
        if "running;" in line:
            return seen


def test_ctrl_c_stops_the_bench_cleanly_and_says_what_was_not_met(tmp_path):
    text = f"""
bus: {{listen: [127.0.0.1:0]}}
processes:
  uart0: {{kind: device, class: {UART}, claim: uart0, args: {{output: none, input: none}}}}
expect: {{timeout: 600s, memory: [{{addr: 0x1000, value: 1}}]}}
"""
    proc = _start_up(_bench(tmp_path, text))
    lines = _wait_running(proc)
    listens = next(ln for ln in lines if "the bus listens on" in ln)
    address = listens.split("listens on ", 1)[1].split()[0].rstrip(",")
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal: the whole foreground job
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.splitlines() == [
        "mmiobus up: error: stopped before the expectations were met:",
        "  0x1 (4 bytes) at 0x1000: it held 0x0",
    ]
    assert "device detached" in out and "stopped" in out  # the device went first, then the bus
    assert out.index("device detached") < out.index("shutting down")
    host, port = address.rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=2):
        pass  # nothing listens there any more


def test_the_processes_are_out_of_reach_of_ctrl_c_but_in_ups_session(tmp_path):
    """A terminal's Ctrl-C reaches `up` alone (it stops the processes in order), and the
    processes stay in its session: where the kernel shares the cores out by session
    (autogroup), a session of their own made forwarded reads slower than by hand."""
    text = f"""
bus: {{listen: [127.0.0.1:0]}}
processes:
  uart0: {{kind: device, class: {UART}, claim: uart0, args: {{output: none, input: none}}}}
"""
    proc = _start_up(_bench(tmp_path, text))
    try:
        _wait_running(proc)
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                    .read_text().split()]  # fmt: skip
        assert len(children) == 2  # the bus and the device
        for child in children:
            assert os.getpgid(child) == child != os.getpgid(proc.pid)
            assert os.getsid(child) == os.getsid(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_ctrl_c_ends_a_bench_without_expectations_with_status_0(tmp_path):
    proc = _start_up(_bench(tmp_path, "bus: {listen: [127.0.0.1:0]}\n"))
    _wait_running(proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_the_live_status_shows_devices_and_accesses(tmp_path):
    """At a terminal, a status line at the bottom: devices attached, accesses per second,
    faults, trace events lost."""
    text = f"""
bus: {{listen: [127.0.0.1:0]}}
processes:
  uart0: {{kind: device, class: {UART}, claim: uart0, args: {{output: none, input: none}}}}
"""
    main, secondary = pty.openpty()
    proc = subprocess.Popen([MMIOBUS, "up", str(_bench(tmp_path, text))], stdout=secondary,
                            stderr=secondary, env=process_env())  # fmt: skip
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + 60
    try:
        while b"1 device (uart0)" not in screen and time.monotonic() < deadline:
            if select.select([main], [], [], 0.5)[0]:
                screen += os.read(main, 65536)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        os.close(main)
    status = screen.decode(errors="replace").rsplit("\r\033[K", 1)[-1]
    assert "1 device (uart0)" in status
    assert "accesses/s" in status and "faults" in status and "trace events lost" in status


def test_opensbi_boots_in_the_example_bench(tmp_path):
    need(OPENSBI)
    record = tmp_path / "boot.jsonl"
    out = _up(ROOT / "examples" / "benches" / "opensbi.yaml", "--record", str(record), timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "uart0  │ Platform Console Device   : uart8250" in out.stdout.splitlines()
    assert "cpu0   │ mmiobus cpu cpu0: reached at pc=0x80200000" in out.stdout
    initiators = {json.loads(line)["initiator"] for line in record.read_text().splitlines()}
    assert "cpu0" in initiators


def test_credentials_reach_the_bus_and_every_process_from_files(tmp_path):
    """The bus requires the token (serve --token-file), the processes present it
    ($MMIOBUS_TOKEN_FILE) and so does `up` itself (its memory expectation)."""
    (tmp_path / "bench.token").write_text("the-bench-token\n")
    text = HELLO_BENCH.replace("expect:", "credentials: {token: {file: bench.token}}\nexpect:")
    out = _up(_bench(tmp_path, text, **{"hello.py": HELLO}))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the-bench-token" not in out.stdout + out.stderr


def test_roles_from_an_auth_file_with_a_token_per_process(tmp_path):
    (tmp_path / "bench.token").write_text("token-of-the-bench\n")
    (tmp_path / "uart.token").write_text("token-of-the-uart\n")
    (tmp_path / "auth.yaml").write_text(
        "identities:\n"
        "  - {name: bench, token_file: bench.token, roles: [read, write]}\n"
        "  - {name: uart, token_file: uart.token, roles: [device],\n"
        "     device: {names: [uart0], claims: [uart0]}}\n"
    )
    text = HELLO_BENCH.replace(
        "expect:", "credentials: {token: {file: bench.token}, auth: auth.yaml}\nexpect:"
    ).replace("claim: uart0,", "claim: uart0, token: {file: uart.token},")
    out = _up(_bench(tmp_path, text, **{"hello.py": HELLO}))
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_secret_that_cannot_be_read_is_one_line(tmp_path):
    path = _bench(tmp_path, "credentials: {token: {env: NO_SUCH_VARIABLE_FOR_MMIOBUS}}\n")
    out = _up(path)
    assert out.returncode == 1
    assert out.stderr == (f"mmiobus up: error: {path}:1:22: credentials.token: the environment "
                          "variable NO_SUCH_VARIABLE_FOR_MMIOBUS is not set\n")  # fmt: skip


def test_qemus_own_uart_is_the_console_in_the_example_bench(tmp_path):
    """examples/benches/qemu-uart.yaml: a `qemu` process (QEMU's 16550) and the CPU."""
    need(OPENSBI)
    if shutil.which("qemu-system-riscv64") is None:
        pytest.skip("qemu-system-riscv64 is missing: apt-get install qemu-system-misc "
                    "(python3 dev.py test installs it when run as root)")  # fmt: skip
    bench = tmp_path / "qemu-uart.yaml"  # its console.txt lands beside it, in tmp_path
    shutil.copy(ROOT / "examples" / "benches" / "qemu-uart.yaml", bench)
    out = _up(bench, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "OpenSBI" in (tmp_path / "console.txt").read_text()


def test_a_verilog_block_answers_in_the_example_bench():
    """examples/benches/rtl.yaml: an `rtl` process whose ID register the bench reads."""
    need_rtl()
    out = _up(ROOT / "examples" / "benches" / "rtl.yaml", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "regblock │ mmiobus device regblock: serving regblock" in out.stdout
