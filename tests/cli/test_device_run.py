"""`mmiobus device run` when things go wrong, run in this process (``main(argv)``) against real
servers: every gRPC refusal is one line (a name taken, a bus that cannot be reached with
--no-reconnect, bad credentials, a region that does not exist, a class that is not a Device);
a refusal that retrying cannot mend stops even without --no-reconnect; retries are jittered; and
MODULE:CLASS imports from the current folder as `python -m` does.
"""

from __future__ import annotations

import asyncio
import sys
import time

import grpc
import pytest
from mmiobus.client import Bus
from mmiobus.devices import DeviceRunner, Placement
from mmiobus.devices import runner as runner_module
from mmiobus.devices.models.timer import Timer
from mmiobus.devices.runner import Refused
from mmiobus.server import logs
from support.devices import start_device
from support.machines import machine_yaml, mmio
from support.models import TIMER
from support.ports import free_port
from support.servers import ServerFactory, ServerProcess

TOKEN = "s3cret"
MACHINE = machine_yaml(
    [
        {"name": "ram", "kind": "ram", "addr": 0, "size": 0x10000},
        mmio("timer0", 0x10001000, 0x10, "timer0", valid=(4, 4), impl=(4, 4)),
    ]
)
BLINKER = """\
from mmiobus.devices import Device, Register, RegisterFile


class Blinker(Device):
    size = 0x10
    valid = impl = (4, 4)

    def __init__(self) -> None:
        super().__init__()
        self.registers = RegisterFile(Register("id", 0x8, reset=0xB11C, access="ro"))
"""


@pytest.fixture(autouse=True)
def quiet_logging(monkeypatch):
    """`device run` configures logging for its process: leave this one's alone."""
    monkeypatch.setattr(logs, "configure", lambda *a: None)


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE)


@pytest.fixture(scope="module")
def guarded(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE, "--device-token", TOKEN)


def test_a_bus_that_cannot_be_reached_with_no_reconnect_is_one_line(mmiobus):
    """--no-reconnect and nothing listening: exit 1, one line naming the address and what to
    do (no traceback of gRPC's)."""
    target = f"127.0.0.1:{free_port()}"
    out = mmiobus("device", "run", TIMER, "--claim", "timer0", "-s", target, "--no-reconnect")
    assert out.returncode == 1
    line = out.one_error_line()
    assert target in line and "mmiobus serve" in line


def test_a_bus_that_goes_away_with_no_reconnect_ends_the_device_with_one_line(machine_server):
    """--no-reconnect and the bus stops: the device exits 1 saying so (not 0 in silence), while
    stopping the device itself (SIGTERM) is still a clean exit."""
    bus = machine_server(MACHINE)
    device = start_device(TIMER, bus.tcp, "--claim", "timer0", "--no-reconnect")
    stays = start_device(TIMER, bus.tcp, "--at", "0x10002000", "--name", "t2", "--no-reconnect")
    assert stays.stop() == 0, stays.log()
    assert bus.stop() == 0, bus.log()
    assert device.proc.wait(30) == 1, device.log()
    errors = [ln for ln in device.log().splitlines() if " error: " in ln]
    assert len(errors) == 1 and "of device 'timer0'" in errors[0], device.log()
    assert bus.tcp in errors[0] and "Traceback" not in device.log()


def test_a_class_that_is_not_a_device_is_one_line(mmiobus, server):
    out = mmiobus("device", "run", "collections:OrderedDict", "--claim", "timer0",
                  "-s", server.tcp, "--no-reconnect")  # fmt: skip
    assert out.returncode == 1
    line = out.one_error_line()
    assert "OrderedDict" in line and "mmiobus.devices.Device" in line


def test_a_region_that_does_not_exist_is_one_line_saying_where_to_look(mmiobus, server):
    """A claim of a region the machine does not have stops at once (retrying cannot mend it),
    even without --no-reconnect."""
    out = mmiobus("device", "run", TIMER, "--claim", "nosuch", "-s", server.tcp)
    assert out.returncode == 1
    line = out.one_error_line()
    assert "'nosuch'" in line and "mmiobus regions" in line


def test_bad_credentials_stop_at_once_without_no_reconnect(mmiobus, guarded):
    """A wrong --token is refused for good: one line saying to check --token, exit 1, no
    retrying for ever."""
    started = time.monotonic()
    out = mmiobus("device", "run", TIMER, "--claim", "timer0", "-s", guarded.tcp,
                  "--token", "wrong")  # fmt: skip
    assert out.returncode == 1
    line = out.one_error_line()
    assert "--token" in line and "timer0" in line
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("reconnect", [[], ["--no-reconnect"]], ids=["reconnect", "no-reconnect"])
def test_a_name_taken_for_longer_than_the_grace_is_one_line(mmiobus, server, reconnect):
    """Another device keeps the name: after a grace of a few seconds (a device restarting
    quickly may find its previous session not yet gone), one line saying what to do; with or
    without --no-reconnect."""
    first = start_device(TIMER, server.tcp, "--claim", "timer0", name="timer0")
    try:
        started = time.monotonic()
        out = mmiobus("device", "run", TIMER, "--claim", "timer0", "-s", server.tcp,
                      "--log-level", "warning", *reconnect)  # fmt: skip
        waited = time.monotonic() - started
    finally:
        first.stop()
    assert out.returncode == 1
    line = out.one_error_line()
    assert "already attached" in line and "--name" in line
    assert runner_module.NAME_GRACE <= waited < runner_module.NAME_GRACE + 10


async def test_a_name_freed_within_the_grace_is_taken(server):
    """A device restarted while its previous process is still attached serves once the old
    one is gone, within the grace."""
    first = start_device(TIMER, server.tcp, "--claim", "timer0", name="timer0")
    ready = asyncio.Event()
    runner = DeviceRunner(
        Timer(), server.tcp, name="timer0", claims=["timer0"], on_ready=lambda *_: ready.set(),
        name_grace=30,
    )  # fmt: skip
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(1.0)
        assert not ready.is_set()  # still refused: the name is taken
        await asyncio.to_thread(first.stop)
        await asyncio.wait_for(ready.wait(), 20)
        assert runner.sessions == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_runner_raises_refused_for_a_name_kept_past_its_grace(server):
    first = start_device(TIMER, server.tcp, "--claim", "timer0", name="timer0")
    try:
        runner = DeviceRunner(Timer(), server.tcp, name="timer0", claims=["timer0"],
                              name_grace=0.5)  # fmt: skip
        with pytest.raises(Refused) as info:
            await asyncio.wait_for(runner.run(), 20)
    finally:
        first.stop()
    assert info.value.code == grpc.StatusCode.ALREADY_EXISTS


async def test_retries_wait_jittered_doubling_delays(monkeypatch):
    """Each wait before trying again is drawn between half the back-off delay and all of it,
    and the delay doubles up to 5 s."""
    asked: list[float] = []
    waited: list[float] = []
    jittered = runner_module.jittered

    def spy(delay: float) -> float:
        asked.append(delay)
        waited.append(jittered(delay))
        return 0.0 if len(asked) < 8 else 3600.0

    monkeypatch.setattr(runner_module, "jittered", spy)
    runner = DeviceRunner(Timer(), f"127.0.0.1:{free_port()}", name="t",
                          placement=Placement(addr=0x1000))  # fmt: skip
    task = asyncio.create_task(runner.run())
    while len(asked) < 8:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert asked[:8] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert all(d / 2 <= w <= d for d, w in zip(asked, waited, strict=True))
    draws = [jittered(1.0) for _ in range(50)]
    assert len(set(draws)) > 40 and all(0.5 <= d <= 1.0 for d in draws)


# -- MODULE:CLASS from the current folder -------------------------------------------------------


@pytest.fixture
def blinker_folder(tmp_path, monkeypatch):
    """A folder holding mymodule.py (the README's Blinker), as the current folder; sys.path
    restored afterwards."""
    (tmp_path / "mymodule.py").write_text(BLINKER)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.delitem(sys.modules, "mymodule", raising=False)
    return tmp_path


def test_a_module_in_the_current_folder_imports_as_with_python_m(
    mmiobus, blinker_folder, monkeypatch
):
    """`device run mymodule:Blinker` finds mymodule.py in the current folder: it gets as far
    as dialing the bus (here nobody answers), not "cannot import"."""
    monkeypatch.chdir(blinker_folder)
    target = f"127.0.0.1:{free_port()}"
    out = mmiobus("device", "run", "mymodule:Blinker", "--at", "0x10003000", "--name",
                  "blinker", "-s", target, "--no-reconnect")  # fmt: skip
    assert out.returncode == 1
    assert "no mmiobus server answers" in out.one_error_line()
    monkeypatch.delitem(sys.modules, "mymodule", raising=False)


def test_a_module_elsewhere_is_one_line_saying_it_cannot_import(
    mmiobus, blinker_folder, tmp_path_factory, monkeypatch
):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    out = mmiobus("device", "run", "mymodule:Blinker", "--at", "0x10003000",
                  "-s", "127.0.0.1:1", "--no-reconnect")  # fmt: skip
    assert out.returncode == 1
    assert "cannot import 'mymodule'" in out.one_error_line()


def test_a_device_from_the_current_folder_serves(server, blinker_folder):
    """End to end, as the README runs it: the installed script, started in the folder that
    holds mymodule.py (and nothing on PYTHONPATH for it), serves its registered region."""
    import subprocess

    from support.command_line import command_env
    from support.servers import MMIOBUS

    proc = subprocess.Popen(
        [MMIOBUS, "device", "run", "mymodule:Blinker", "--at", "0x10003000", "--name", "blinker",
         "-s", server.tcp],
        cwd=blinker_folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=command_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving blinker" in line, proc.stderr.read() if proc.poll() is not None else line
        with Bus(server.tcp) as bus:
            assert bus.read_u32(0x10003008) == 0xB11C
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
