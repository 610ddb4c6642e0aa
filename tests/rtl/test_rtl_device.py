"""The example register block (examples/rtl/regblock.v) served by `mmiobus device rtl`: bus
accesses become APB transfers in Icarus Verilog, its interrupt output is a bus line, and
simulated time advances as docs/peers.md says."""

from __future__ import annotations

import subprocess
import time

import pytest
from mmiobus.client import Bus, BusFault
from mmiobus.credentials import Credentials
from support.auth import write_auth_file, write_token
from support.rtl import need_rtl
from support.servers import MMIOBUS, process_env, start_server
from support.wait import wait_for

from .conftest import EXAMPLE, start_rtl_device

BASE = 0x20000000
ID, SCRATCH, CTRL, STATUS, TRIGGER, CYCLES = 0x0, 0x4, 0x8, 0xC, 0x10, 0x14
APB_CYCLES = 2  # setup and access phases: the block never waits


@pytest.fixture(scope="module")
def regblock():
    """A bus with the register block registered at BASE (interrupt line regblock.irq)."""
    need_rtl()
    server = start_server()
    dev = start_rtl_device(server.tcp, str(EXAMPLE), "--top", "regblock",
                           "--at", f"{BASE:#x}:4K", "--irq", "irq")  # fmt: skip
    yield server, dev
    dev.stop()
    assert server.stop() == 0, server.log()


def test_registers_answer_as_the_verilog_says(regblock):
    server, _dev = regblock
    with Bus(server.tcp) as bus:
        assert bus.read_u32(BASE + ID) == 0x524C5401
        bus.write_u32(BASE + SCRATCH, 0x12345678)
        assert bus.read_u32(BASE + SCRATCH) == 0x12345678
        bus.write(BASE + SCRATCH + 1, b"\xab")  # one byte lane (PSTRB)
        assert bus.read_u32(BASE + SCRATCH) == 0x1234AB78
        assert bus.read(BASE + SCRATCH + 2, 2) == b"\x34\x12"


def test_an_unknown_register_answers_pslverr_as_a_bus_fault(regblock):
    server, _dev = regblock
    with Bus(server.tcp) as bus, pytest.raises(BusFault) as fault:
        bus.read_u32(BASE + 0x40)
    assert "ERROR" in str(fault.value)


def test_the_interrupt_output_drives_the_bus_line(regblock):
    server, _dev = regblock
    with Bus(server.tcp) as bus:
        bus.write_u32(BASE + CTRL, 1)
        bus.write_u32(BASE + TRIGGER, 1)
        # Reported before the write that raised it was answered: no waiting needed.
        assert bus.irqs("regblock.irq") == {"regblock.irq": True}
        assert bus.read_u32(BASE + STATUS) == 1
        bus.write_u32(BASE + STATUS, 1)  # write 1 to clear
        assert bus.irqs("regblock.irq") == {"regblock.irq": False}


def test_simulated_time_advances_by_the_apb_cycles_of_each_access_only(regblock):
    server, _dev = regblock
    with Bus(server.tcp) as bus:
        first = bus.read_u32(BASE + CYCLES)
        second = bus.read_u32(BASE + CYCLES)
        time.sleep(0.3)  # wall time passes; simulated time does not
        third = bus.read_u32(BASE + CYCLES)
    assert second - first == APB_CYCLES
    assert third - second == APB_CYCLES


def test_a_bus_reset_of_the_device_asserts_presetn(regblock):
    server, _dev = regblock
    out = subprocess.run([MMIOBUS, "reset-device", "regblock", "-s", server.tcp],
                         capture_output=True, text=True, timeout=60, env=process_env())  # fmt: skip
    assert out.returncode == 0, out.stderr
    with Bus(server.tcp) as bus:
        assert bus.read_u32(BASE + SCRATCH) == 0
        assert bus.read_u32(BASE + CYCLES) < 16  # counted from the reset


def test_idle_cycles_let_free_running_logic_move_on_between_accesses():
    need_rtl()
    server = start_server()
    dev = start_rtl_device(server.tcp, str(EXAMPLE), "--top", "regblock", "--at",
                           f"{BASE:#x}:4K", "--idle-cycles", "100", "--idle-ms", "5")  # fmt: skip
    try:
        with Bus(server.tcp) as bus:
            first = bus.read_u32(BASE + CYCLES)
            wait_for(lambda: bus.read_u32(BASE + CYCLES) - first > 1000, 30)
    finally:
        dev.stop()
        assert server.stop() == 0, server.log()


def test_the_claimed_region_of_a_description_can_be_the_design(tmp_path):
    need_rtl()
    machine = tmp_path / "machine.yaml"
    machine.write_text(
        "address_spaces: [{name: memory, root: system}]\n"
        "regions:\n"
        "  - name: system\n"
        "    kind: container\n"
        "    size: 2**64\n"
        "    subregions:\n"
        f"      - {{name: regs, kind: mmio, addr: {BASE:#x}, size: 0x100, device: regs,\n"
        "         valid: {min: 1, max: 4}, impl: {min: 1, max: 4}}\n"
    )
    server = start_server(config=machine)
    dev = start_rtl_device(server.tcp, str(EXAMPLE), "--top", "regblock", "--claim", "regs")
    try:
        with Bus(server.tcp) as bus:
            assert bus.read_u32(BASE + ID) == 0x524C5401
            assert [d.name for d in bus.devices()] == ["regs"]
    finally:
        dev.stop()
        assert server.stop() == 0, server.log()


def test_the_device_presents_its_token_file_to_a_bus_that_asks(tmp_path):
    """`device rtl --token-file`: the session and the layout lookup carry the token (the peers
    take the same credential options as `device run`)."""
    need_rtl()
    token, path = write_token(tmp_path, "rtl")
    area = [{"address_space": "memory", "addr": BASE, "size": "4K"}]
    auth = write_auth_file(tmp_path, [
        {"name": "rtl", "token_file": str(path), "roles": ["device", "read"],
         "device": {"names": ["regblock"], "claims": [], "register": area}},
    ])  # fmt: skip
    server = start_server("--auth", str(auth))
    args = [str(EXAMPLE), "--top", "regblock", "--at", f"{BASE:#x}:4K", "--no-reconnect"]
    try:
        refused = subprocess.run([MMIOBUS, "device", "rtl", *args, "--server", server.tcp],
                                 capture_output=True, text=True, env=process_env(), timeout=60)  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        dev = start_rtl_device(server.tcp, *args, "--token-file", str(path))
        try:
            with Bus(server.tcp, credentials=Credentials(token)) as bus:
                assert bus.read_u32(BASE + ID) == 0x524C5401
        finally:
            dev.stop()
    finally:
        assert server.stop() == 0, server.log()
