"""mmiobus's pytest plugin, installed with mmiobus (entry point ``pytest11``): fixtures that
start a bus, attach device models to it, give a client, record traces and wait for console
text, so that a device model's test is a few lines::

    def test_the_uart_prints_what_is_written(mmiobus_bus):
        uart = mmiobus_bus.device("mmiobus.devices.models.uart16550:Uart16550",
                                  claim="uart0", args={"output": "stdout", "input": "none"})
        mmiobus_bus.bus.write(0x10000000, b"A")
        mmiobus_bus.console(uart).wait_for("A")

Fixtures (all function-scoped; everything they start stops after the test):

``mmiobus_bus``
    A ``mmiobus.testbench.rig.BusRig`` serving ``mmiobus_machine`` on a free port:
    ``.bus`` (a blocking ``Bus``), ``.device(...)`` (a process for "MODULE:CLASS", this
    process for a ``Device`` instance), ``.cpu(...)``, ``.console(...)``, ``.record(...)``,
    ``.log()``.
``mmiobus_machine``
    The machine ``mmiobus_bus`` serves: a built-in machine's name (default "default"), a
    description ``Path`` or YAML text. Override it in a module or a conftest.py.
``mmiobus_server_devices``
    Regions whose device the server runs itself, ``{region: {"class": ..., "args": ...}}``
    (default none). Override it too.
``mmiobus_bench``
    ``mmiobus_bench(path, record=None)`` starts the bench file at ``path`` (its processes in
    its folder) and returns its ``BusRig``; ``.wait()`` waits for its expectations.
``mmiobus_direct``
    ``mmiobus_direct(ram=0)``: a ``DirectBus`` — a bare memory system, no server — with
    ``.attach(device, addr)``, ``.read``, ``.write``.

The plugin imports nothing of mmiobus until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .inprocess import DirectBus
    from .rig import BusRig


@pytest.fixture
def mmiobus_machine() -> str | Path:
    """The machine ``mmiobus_bus`` serves (override me): a built-in name, a Path, YAML text."""
    return "default"


@pytest.fixture
def mmiobus_server_devices() -> dict[str, dict[str, Any]]:
    """Regions whose device model the server runs (override me): ``{region: {"class":
    "MODULE:CLASS", "args": {...}}}``."""
    return {}


@pytest.fixture
def mmiobus_bus(
    mmiobus_machine: str | Path,
    mmiobus_server_devices: dict[str, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BusRig]:
    """A running bus on ``mmiobus_machine`` (see the module docstring)."""
    from .rig import BusRig

    workdir = tmp_path_factory.mktemp("mmiobus")
    rig = BusRig.start(mmiobus_machine, workdir, devices=mmiobus_server_devices)
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture
def mmiobus_bench(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., BusRig]]:
    """``mmiobus_bench(path, record=None)``: the bench file at ``path``, running."""
    from .rig import BusRig

    rigs: list[BusRig] = []

    def start(path: str | Path, record: str | None = None) -> BusRig:
        rig = BusRig.from_bench(path, tmp_path_factory.mktemp("mmiobus-bench"), record)
        rigs.append(rig)
        return rig

    try:
        yield start
    finally:
        for rig in reversed(rigs):
            rig.close()


@pytest.fixture
def mmiobus_direct() -> Iterator[Callable[..., DirectBus]]:
    """``mmiobus_direct(ram=0)``: a bare memory system to attach device models to."""
    from .inprocess import DirectBus

    made: list[DirectBus] = []

    def make(ram: int = 0) -> DirectBus:
        direct = DirectBus(ram)
        made.append(direct)
        return direct

    try:
        yield make
    finally:
        for direct in made:
            direct.close()
