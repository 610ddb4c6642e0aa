"""The pytest plugin, as users meet it: installed with mmiobus (entry point ``pytest11``), run
by pytest in a folder of the user's own (``pytester``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A process of its own: the plugin starts threads and processes, as in a user's run.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=300)


def test_the_example_folder_passes_as_a_user_would_run_it(pytester: pytest.Pytester):
    for path in (ROOT / "examples" / "pytest").iterdir():
        if path.is_file():
            shutil.copy(path, pytester.path / path.name)
    result = _run(pytester)
    result.assert_outcomes(passed=4)


def test_the_fixtures_come_from_the_installed_plugin(pytester: pytest.Pytester):
    pytester.makepyfile("def test_it(mmiobus_bus):\n    assert mmiobus_bus.bus.info\n")
    _run(pytester).assert_outcomes(passed=1)
    _run(pytester, "-p", "no:mmiobus").assert_outcomes(errors=1)  # fixture 'mmiobus_bus' not found


def test_a_machine_as_text_and_a_device_the_server_runs(pytester: pytest.Pytester):
    pytester.makepyfile('''
import pytest

MACHINE = """
address_spaces: [{name: memory, root: system}]
regions:
  - {name: system, kind: container, size: 2**64, subregions: [
      {name: scratch0, kind: mmio, addr: 0x4000, size: 0x100, device: scratch0,
       valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}]}
"""

@pytest.fixture
def mmiobus_machine():
    return MACHINE

@pytest.fixture
def mmiobus_server_devices():
    return {"scratch0": {"class": "mmiobus.devices.models.scratch:ScratchRam", "args": {"fill": 0x5a}}}

def test_the_server_runs_the_model(mmiobus_bus):
    assert mmiobus_bus.bus.read(0x4000, 2) == b"\\x5a\\x5a"
    names = [(d.name, d.in_process) for d in mmiobus_bus.bus.devices()]
    assert names == [("scratch0", True)]
''')
    _run(pytester).assert_outcomes(passed=1)


def test_a_bench_that_fails_says_what_was_seen(pytester: pytest.Pytester):
    pytester.makefile(
        ".yaml",
        bench="""
bus: {listen: [127.0.0.1:0]}
expect:
  timeout: 1s
  memory: [{addr: 0x1000, value: 5}]
""",
    )
    pytester.makepyfile("""
def test_it(mmiobus_bench):
    mmiobus_bench("bench.yaml").wait()
""")
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*expectations not met within 1s:*", "*0x5 (4 bytes) at 0x1000: it held 0x0*"]
    )


def test_console_text_from_a_file_a_device_writes(pytester: pytest.Pytester):
    pytester.makepyfile("""
def test_it(mmiobus_bus):
    mmiobus_bus.device("mmiobus.devices.models.uart16550:Uart16550", claim="uart0",
                       args={"output": "file:uart.txt", "input": "none"})
    for ch in b"ready>":
        mmiobus_bus.bus.write(0x10000000, bytes([ch]))
    assert mmiobus_bus.console("uart.txt").wait_for("ready>") == "ready>"
    assert "uart0  │ mmiobus device uart0: serving uart0" in mmiobus_bus.log()
""")
    _run(pytester).assert_outcomes(passed=1)


def test_a_device_that_cannot_start_fails_the_test_with_its_last_lines(pytester: pytest.Pytester):
    pytester.makepyfile("""
import pytest

def test_it(mmiobus_bus):
    with pytest.raises(AssertionError, match="exited with status 1 before it was ready"):
        mmiobus_bus.device("no.such.module:Device", claim="uart0")
""")
    _run(pytester).assert_outcomes(passed=1)


def test_the_readmes_pytest_example_passes(pytester: pytest.Pytester):
    import re

    readme = (ROOT / "README.md").read_text()
    [example] = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                 if "def test_the_uart_prints_what_the_bus_writes" in b]  # fmt: skip
    pytester.makepyfile(test_readme_example=example)
    _run(pytester).assert_outcomes(passed=2)
