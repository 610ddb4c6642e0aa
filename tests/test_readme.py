"""The README's examples work as written (against a real server)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_quickstart_has_exactly_the_two_commands():
    quickstart = README.split("## Quickstart", 1)[1]
    first = _blocks("sh")[0]
    assert first in quickstart
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["python3 dev.py serve", "python3 dev.py test"]


def test_ci_runs_the_readmes_test_command():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "python3 dev.py test" in ci


def test_python_example_runs_against_a_server(server):
    example = next(b for b in _blocks("python") if "from mmiobus.client import Bus" in b)
    code = example.replace("127.0.0.1:7170", server.tcp)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    printed = out.stdout.splitlines()
    # The comment after each print says what it shows (a trailing "(...)" explains it).
    expected = [
        re.sub(r" \(.*\)$", "", line.split("# ", 1)[1].strip())
        for line in example.splitlines()
        if "print(" in line and "# " in line
    ]
    assert [p.strip() for p in printed] == expected


@pytest.mark.parametrize("marker", ["from mmiobus.memory import MemorySystem\n\nsys", "attach("])
def test_in_process_example_runs_and_prints_what_it_says(marker):
    """The memory model's example, and a device model tested without a server."""
    example = next(b for b in _blocks("python") if marker in b)
    out = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    comment = next(line for line in example.splitlines() if "print(" in line).split("# ", 1)[1]
    assert out.stdout.strip() == comment.strip()


def test_device_example_defines_a_working_device():
    example = next(b for b in _blocks("python") if "class Blinker(Device)" in b)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    blinker = namespace["Blinker"]()
    assert blinker.read(0x8, 4) == blinker.registers["id"]
    blinker.write(0x4, 4, 1)  # w1c on a clear bit: stays clear
    assert blinker.read(0x4, 4) == 0


def _command_line_block() -> str:
    section = README.split("### The command line", 1)[1]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)[0]


def test_command_line_examples_run_as_written(server, tmp_path):
    """Every command of the README's command-line block runs against a bus on the built-in
    machine, in a folder holding the files it names (a 2 MB firmware.bin, and ops.yaml from
    the README's apply example), with $MMIOBUS_SERVER set: exit status 0 for each."""
    from support.command_line import command_env
    from support.servers import MMIOBUS

    (tmp_path / "firmware.bin").write_bytes(bytes(range(256)) * (2 << 12))
    ops = next(b for b in _blocks("yaml") if "create_region" in b)
    (tmp_path / "ops.yaml").write_text(ops)
    env = {**command_env(), "MMIOBUS_SERVER": server.tcp}
    commands = [
        line.split("#")[0].strip()
        for line in _command_line_block().splitlines()
        if line.strip().startswith("mmiobus ")
    ]
    assert len(commands) >= 10
    for command in commands:
        args = shlex.split(command)
        out = subprocess.run([MMIOBUS, *args[1:]], cwd=tmp_path, env=env, input="quit\n",
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, f"{command}: {out.stderr}"
    assert (tmp_path / "ram.bin").read_bytes()[:512] == bytes(range(256)) * 2


def test_apply_example_reshapes_the_default_machine(server, tmp_path):
    """The README's apply example, on the built-in machine: RAM appears at 0x20000000, the
    boot ROM moves, the timer's window goes."""
    from mmiobus.client import Bus
    from support.command_line import mmiobus

    ops = next(b for b in _blocks("yaml") if "create_region" in b)
    path = tmp_path / "ops.yaml"
    path.write_text(ops)
    out = mmiobus("apply", str(path), "-s", server.tcp)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"applied {ops.count('- ')} operations")
    with Bus(server.tcp) as bus:
        bus.write(0x20000000, b"ok")
        assert bus.read(0x20000000, 2) == b"ok"
        flat = bus.mtree(flat=True)
    assert "00000000fff00000-00000000fff3ffff (prio 0, rom): boot.rom" in flat
    assert "timer0" not in flat


def test_the_blinker_runs_from_the_current_folder(server, tmp_path):
    """`mmiobus device run mymodule:Blinker ...` as the README writes it, in a folder holding
    the README's Blinker as mymodule.py: it serves its new region (its id register reads
    0xB11C)."""
    from mmiobus.client import Bus
    from support.command_line import command_env
    from support.servers import MMIOBUS

    example = next(b for b in _blocks("python") if "class Blinker(Device)" in b)
    (tmp_path / "mymodule.py").write_text(example)
    line = next(ln for ln in README.splitlines() if "device run mymodule:Blinker" in ln)
    args = shlex.split(line.split("#")[0])
    proc = subprocess.Popen([MMIOBUS, *args[1:], "-s", server.tcp], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=command_env())  # fmt: skip
    try:
        assert proc.stdout is not None
        assert "serving blinker" in proc.stdout.readline()
        with Bus(server.tcp) as bus:
            assert bus.read_u32(0x10003008) == 0xB11C
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
