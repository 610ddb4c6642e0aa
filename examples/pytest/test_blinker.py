"""Tests of the blinker model with mmiobus's pytest fixtures (installed with mmiobus)."""

from __future__ import annotations

from pathlib import Path

import pytest
from blinker import BLINKER_ID, Blinker

HERE = Path(__file__).resolve().parent
BLINKER = 0x10000000


@pytest.fixture
def mmiobus_machine() -> Path:
    """The machine mmiobus_bus serves (the plugin's default is the built-in machine)."""
    return HERE / "machine.yaml"


def test_the_id_register_reads_without_any_server(mmiobus_direct):
    memory = mmiobus_direct()
    memory.attach(Blinker(), 0x1000)
    assert memory.read_u32(0x1008) == BLINKER_ID


def test_ctrl_raises_the_interrupt_line_of_a_device_process(mmiobus_bus):
    mmiobus_bus.device("blinker:Blinker", claim="blinker0")
    bus = mmiobus_bus.bus
    assert bus.read_u32(BLINKER + 8) == BLINKER_ID
    bus.write_u32(BLINKER, 1)
    assert bus.irqs("blinker0.*") == {"blinker0.irq": True}


def test_status_counts_writes_of_a_model_in_this_process(mmiobus_bus):
    blinker = mmiobus_bus.device(Blinker(), claim="blinker0")
    writes = mmiobus_bus.record(regions=["blinker0"], direction="write")
    mmiobus_bus.bus.write_u32(BLINKER, 0)
    assert blinker.device.writes == 1  # the instance is right here
    assert mmiobus_bus.bus.read_u32(BLINKER + 4) == 1
    mmiobus_bus.bus.write_u32(BLINKER + 4, 1)  # write 1 to clear
    assert mmiobus_bus.bus.read_u32(BLINKER + 4) == 0
    assert writes.wait_for(lambda e: e.addr == BLINKER + 4).data == b"\x01\x00\x00\x00"


def test_the_bench_meets_its_expectations(mmiobus_bench):
    mmiobus_bench(HERE / "bench.yaml").wait()
