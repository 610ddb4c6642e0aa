"""The README's examples work as written (against a real server)."""

from __future__ import annotations

import re
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
