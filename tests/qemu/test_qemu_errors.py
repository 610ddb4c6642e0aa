"""`mmiobus device qemu` refuses bad input with one line and exit status 1, before anything
attaches: the bus is as it was, and no QEMU is left running."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from mmiobus.client import Bus
from support.servers import MMIOBUS, process_env, start_server

from .conftest import need_qemu


@pytest.fixture(scope="module")
def riscv_bus():
    server = start_server("--machine", "riscv-virt")
    yield server
    assert server.stop() == 0, server.log()


def _run(server, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MMIOBUS, "device", "qemu", "--server", server.tcp, "--serial", "none", *args],
        capture_output=True, text=True, timeout=60, env=process_env(env),
    )  # fmt: skip


def _error(out: subprocess.CompletedProcess[str]) -> str:
    """The command's error line (the log lines before it say what it did)."""
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("mmiobus device: ")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def _bus_untouched(server) -> None:
    with Bus(server.tcp) as bus:
        assert bus.devices() == []
        regions = {r.id: r for r in bus.topology(flat_views=False).regions}
    assert regions["uart0"].device == ""
    assert not any(r.startswith("uart0.") for r in regions)


def _no_qemu_left(out: subprocess.CompletedProcess[str]) -> None:
    for pid in re.findall(r"QEMU started .*pid=(\d+)", out.stderr):
        try:
            running = Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for a zombie
        except (FileNotFoundError, ProcessLookupError):
            running = b""
        assert not running, f"QEMU {pid} still runs"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--claim", "uart0=0x1f000000"],
         "window uart0 (0x1f000000-0x1f000007) is not all inside QEMU's virt machine: nothing "
         "is mapped at 0x1f000000-0x1f000007"),
        (["--claim", "uart0", "--", "-no-such-option"],
         "QEMU could not start: qemu-system-riscv64: -no-such-option: invalid option"),
        (["--claim", "uart0", "--at", "0x30000000:8=0x10000004"],
         "windows uart0 (0x10000000-0x10000007) and 0x30000000 (0x10000004-0x1000000b) overlap "
         "in QEMU"),
        (["--claim", "uart0", "--irq-controller", "/machine/no-such-gic", "--irq", "10=irq"],
         "QEMU has no object at /machine/no-such-gic; interrupt controllers: "
         "/machine/unattached/device[2] (riscv.sifive.plic)"),
        (["--claim", "uart0", "--irq-controller", "arm_gic"],
         "QEMU has no object of type 'arm_gic'"),
        (["--claim", "no-such-region"], "the bus has no region 'no-such-region' to claim"),
    ],
    ids=["outside", "bad-option", "overlap", "unknown-path", "unknown-type", "unknown-region"],
)  # fmt: skip
def test_bad_input_is_one_line_and_leaves_the_bus_as_it_was(riscv_bus, args, says):
    need_qemu("qemu-system-riscv64")
    out = _run(riscv_bus, "--machine", "virt", *args)
    assert says in _error(out)
    _bus_untouched(riscv_bus)
    _no_qemu_left(out)


def test_a_missing_qemu_names_the_debian_package(riscv_bus, tmp_path):
    out = _run(riscv_bus, "--claim", "uart0", env={"PATH": str(tmp_path)})
    assert _error(out) == (
        "mmiobus device: error: qemu-system-riscv64 is not installed: apt-get install "
        "qemu-system-misc"
    )
    _bus_untouched(riscv_bus)
