"""Devices mastering the bus: DMA from a device's handlers, the DMA engine model, and the
re-entrancy guard (A's DMA reaching A, A -> B -> A) with devices in separate processes and
inside the server.

One server for the module; every test resets the devices it uses and works in RAM no other test
touches (the ``spot`` fixture).
"""

from __future__ import annotations

import itertools
import threading

import pytest
from mmiobus.client import Bus, MemTxResult
from support.dma_engine import (
    BUSY,
    CTRL,
    DONE,
    DST_HI,
    DST_LO,
    ERROR,
    IRQ_ENABLE,
    LEN,
    RESULT,
    SRC_HI,
    SRC_LO,
    START,
    STATUS,
    SYNC,
)
from support.machines import DMA_OFFSET, DMA_SPACE, HOLE, RAM_SIZE, device_machine, in_server, mmio
from support.models import DMA_ENGINE, target
from support.models.bus_master import (
    CMD_READ,
    CMD_WRITE,
    M_ADDR,
    M_ATTRS,
    M_CMD,
    M_COUNT,
    M_DATA,
    M_LEN,
    M_RESULT,
    M_SPACE,
)
from support.models.bus_master import Master as MasterModel
from support.models.gate import Gate
from support.models.last_writer import R_REQUESTER, R_VALUE, LastWriter
from support.rig import Rig, RigFactory
from support.spots import Spots
from support.wait import wait_for
from support.words import le, u32, u64

OK = MemTxResult.OK

MASTERS = {"master_remote": (0x10000000, 0x42), "master_local": (0x10001000, 0x43)}
RECORDER = 0x10002000
ENGINES = {
    "dma0_remote": 0x10010000,
    "dma1_remote": 0x10011000,
    "dma0_local": 0x10012000,
    "dma1_local": 0x10013000,
}
GATES = {"gate_remote": 0x10020000, "gate_local": 0x10021000}
SPACES = [DMA_SPACE, "no-such-space"]  # a Master's SPACE register: 1, 2
SPOTS = Spots(0x100000, 0x10000, RAM_SIZE)  # 64 KiB of RAM per test
WINDOW_SPOTS = itertools.count(0, 0x1000)  # addresses in DMA_SPACE, for one test each
TOKENS = itertools.count(0x7000_0001)


@pytest.fixture(scope="module")
def dma(machine_rig: RigFactory, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    gates = tmp_path_factory.mktemp("dma") / "gates"
    gates.mkdir()
    regions, devices = [], []
    for name, (addr, rid) in MASTERS.items():
        if name.endswith("_remote"):
            regions.append(mmio(name, addr, 0x28, name))
            args = ["--arg", f"requester_id={rid}", "--arg", f"spaces=[{','.join(SPACES)}]"]
            devices.append((target(MasterModel), name, args))
        else:
            device = in_server(target(MasterModel), requester_id=rid, spaces=SPACES)
            regions.append(mmio(name, addr, 0x28, device))
    regions.append(mmio("recorder", RECORDER, 0x20, "recorder"))
    devices.append((target(LastWriter), "recorder", []))
    for name, addr in ENGINES.items():
        remote = name.endswith("_remote")
        device = name if remote else in_server(DMA_ENGINE)
        regions.append(mmio(name, addr, 0x20, device, valid=(4, 4), impl=(4, 4)))
        if remote:
            devices.append((DMA_ENGINE, name, []))
    for name, addr in GATES.items():
        remote = name.endswith("_remote")
        device = name if remote else in_server(target(Gate), gate_dir=str(gates))
        regions.append(mmio(name, addr, 0x10, device, valid=(4, 4), impl=(4, 4), deadline="60s"))
        if remote:
            devices.append((target(Gate), name, ["--arg", f"gate_dir={gates}"]))
    rig = machine_rig(device_machine(regions), devices)
    rig.extra["gates"] = gates
    return rig


def token() -> int:
    """A 32-bit value no other test uses (the key that opens a Gate)."""
    return next(TOKENS)


def open_gate(rig: Rig, value: int) -> None:
    (rig.extra["gates"] / f"{value:x}").touch()


class Engine:
    """A DmaEngine on the bus."""

    def __init__(self, rig: Rig, name: str) -> None:
        self.rig, self.name, self.base = rig, name, ENGINES[name]
        rig.bus.reset_device(name)

    def reg(self, offset: int) -> int:
        return self.rig.bus.read_u32(self.base + offset)

    def set(self, offset: int, value: int) -> None:
        self.rig.bus.write_u32(self.base + offset, value)

    def program(self, src: int, dst: int, length: int) -> None:
        for offset, value in (
            (SRC_LO, src & 0xFFFFFFFF),
            (SRC_HI, src >> 32),
            (DST_LO, dst & 0xFFFFFFFF),
            (DST_HI, dst >> 32),
            (LEN, length),
        ):
            self.set(offset, value)

    def start(self, flags: int = 0, bus: Bus | None = None) -> MemTxResult:
        """Write CTRL with START|flags; the write's result."""
        return (bus or self.rig.bus).write(self.base + CTRL, u32(START | flags), check=False)

    def wait_done(self) -> int:
        """Poll STATUS until the copy is over; STATUS."""
        return wait_for(
            lambda: (s := self.reg(STATUS)) & DONE and not s & BUSY and s,
            message=f"{self.name} did not finish its copy",
        )

    def irq(self) -> bool:
        return self.rig.bus.irqs(f"{self.name}.irq").get(f"{self.name}.irq", False)


@pytest.fixture(params=["dma0_remote", "dma0_local"])
def engine(request: pytest.FixtureRequest, dma: Rig) -> Engine:
    """A DmaEngine in a device process, or inside the server; freshly reset."""
    return Engine(dma, request.param)


def gate_for(engine: Engine) -> int:
    """The slow target in the same mode as the engine."""
    return GATES["gate_remote" if engine.name.endswith("_remote") else "gate_local"]


# -- DMA from a device's handlers ------------------------------------------------------------------


class Master:
    """A support.models.bus_master.Master on the bus."""

    def __init__(self, rig: Rig, name: str) -> None:
        self.rig, self.name = rig, name
        self.base, self.requester_id = MASTERS[name]
        rig.bus.reset_device(name)

    def command(
        self, cmd: int, addr: int, *, data: int = 0, length: int = 8, space: int = 0
    ) -> int:
        """Run one DMA (in the address space SPACES[space - 1], or the first); its
        MemTxResult."""
        bus = self.rig.bus
        bus.write(self.base + M_ADDR, u64(addr))
        bus.write(self.base + M_DATA, u64(data))
        bus.write(self.base + M_LEN, u32(length))
        bus.write(self.base + M_SPACE, u32(space))
        bus.write(self.base + M_CMD, u32(cmd))
        return le(bus.read(self.base + M_RESULT, 4))

    def reg(self, offset: int, size: int = 4) -> int:
        return le(self.rig.bus.read(self.base + offset, size))


@pytest.fixture(params=list(MASTERS))
def master(request: pytest.FixtureRequest, dma: Rig) -> Master:
    """A device that makes DMA accesses inside its handlers (a process, or in the server)."""
    return Master(dma, request.param)


def test_device_dma_write_reaches_ram(master: Master, spot: int):
    """dma_write from a handler puts the bytes in RAM."""
    assert master.command(CMD_WRITE, spot, data=0x1122334455667788) == OK
    assert master.rig.bus.read(spot, 8) == u64(0x1122334455667788)


def test_device_dma_read_returns_ram_contents(master: Master, spot: int):
    """dma_read from a handler gets the bytes in RAM."""
    master.rig.bus.write(spot, b"\x01\x02\x03\x04\x05")
    assert master.command(CMD_READ, spot, length=5) == OK
    assert master.reg(M_DATA, 8) == le(b"\x01\x02\x03\x04\x05")


def test_device_dma_reaches_another_address_space(master: Master):
    """A DMA naming another address space lands where that space maps: here a window on RAM."""
    addr = next(WINDOW_SPOTS)
    spot = DMA_OFFSET + addr
    assert master.command(CMD_WRITE, addr, data=0xCAFEF00D, length=4, space=1) == OK
    assert master.rig.bus.read(spot, 4) == u32(0xCAFEF00D)
    master.rig.bus.write(spot + 8, b"window")
    assert master.command(CMD_READ, addr + 8, length=6, space=1) == OK
    assert master.reg(M_DATA, 8) == le(b"window")


@pytest.mark.parametrize(
    "master",
    [
        "master_remote",
        pytest.param(
            "master_local",
        ),
    ],
    indirect=True,
)
def test_device_dma_into_an_unknown_address_space_fails_with_decode_error(master: Master):
    """A DMA naming an address space the bus does not have completes with DECODE_ERROR; the
    device's own access is answered OK."""
    bus = master.rig.bus
    bus.write(master.base + M_SPACE, u32(2))
    assert bus.write(master.base + M_CMD, u32(CMD_WRITE), check=False) == OK
    assert le(bus.read(master.base + M_RESULT, 4)) == MemTxResult.DECODE_ERROR


def test_device_dma_carries_the_devices_requester_id(master: Master):
    """The target of a device's DMA sees the device's requester id in the attributes."""
    assert master.command(CMD_WRITE, RECORDER + R_VALUE, data=0x99) == OK
    assert le(master.rig.bus.read(RECORDER + R_VALUE, 8)) == 0x99
    assert le(master.rig.bus.read(RECORDER + R_REQUESTER, 8)) == master.requester_id


@pytest.mark.parametrize(
    "master",
    [
        "master_remote",
        pytest.param(
            "master_local",
        ),
    ],
    indirect=True,
)
def test_bus_stamps_the_devices_requester_id_over_its_own_attrs(master: Master):
    """A device that passes attributes with another requester id still DMAs with its own."""
    master.rig.bus.write(master.base + M_ATTRS, u32(0x0999))
    assert master.command(CMD_WRITE, RECORDER + R_VALUE, data=0x98) == OK
    assert le(master.rig.bus.read(RECORDER + R_REQUESTER, 8)) == master.requester_id


def test_device_dma_into_a_hole_fails_with_decode_error(master: Master):
    """A DMA to an address nothing is mapped at completes with DECODE_ERROR."""
    assert master.command(CMD_WRITE, HOLE, data=1) == MemTxResult.DECODE_ERROR
    assert master.command(CMD_READ, HOLE) == MemTxResult.DECODE_ERROR


def test_device_dma_into_its_own_region_is_refused_with_access_error(master: Master):
    """A DMA that lands in the device's own region is a re-entrant access: ACCESS_ERROR,
    and the device's registers are untouched."""
    assert master.command(CMD_WRITE, master.base + M_DATA, data=5) == MemTxResult.ACCESS_ERROR
    assert master.reg(M_DATA, 8) == 5  # the value the command itself set, not overwritten
    assert master.command(CMD_READ, master.base + M_ADDR) == MemTxResult.ACCESS_ERROR


def test_devices_counts_dma_requests(master: Master, spot: int):
    """ListDevices' `dma` counter grows by the number of DMA requests the device made."""

    def count() -> int:
        return next(d.dma for d in master.rig.bus.devices() if d.name == master.name)

    before, made = count(), master.reg(M_COUNT)
    for i in range(3):
        master.command(CMD_WRITE, spot + 8 * i, data=i)
        master.command(CMD_READ, spot + 8 * i)
    assert count() - before == master.reg(M_COUNT) - made


# -- the DMA engine model ------------------------------------------------------------------------


def test_engine_copies_ram_to_ram_in_the_background(engine: Engine, spot: int):
    """A START without SYNC is answered at once; the copy completes and DONE rises."""
    data = bytes((i * 7 + 3) & 0xFF for i in range(300))
    engine.rig.bus.write(spot, data)
    engine.program(spot, spot + 0x1000, len(data))
    assert engine.start() == OK
    status = engine.wait_done()
    assert not status & ERROR
    assert engine.reg(RESULT) == OK
    assert engine.rig.bus.read(spot + 0x1000, len(data)) == data


def test_engine_copies_lengths_spanning_several_chunks(engine: Engine, spot: int):
    """A copy longer than the engine's chunk arrives whole and in place."""
    data = bytes((i * 31 + 11) & 0xFF for i in range(10_000))
    engine.rig.bus.write(spot, data)
    engine.program(spot, spot + 0x4000, len(data))
    engine.start()
    engine.wait_done()
    assert engine.rig.bus.read(spot + 0x4000, len(data)) == data
    assert engine.rig.bus.read(spot + 0x4000 + len(data), 4) == bytes(4)


def test_engine_sync_copy_is_done_when_the_start_write_is_answered(engine: Engine, spot: int):
    """In SYNC mode the copy is complete when the write of START returns."""
    engine.rig.bus.write(spot, b"sync copy!")
    engine.program(spot, spot + 0x100, 10)
    assert engine.start(SYNC) == OK
    assert engine.reg(STATUS) & (DONE | BUSY) == DONE
    assert engine.rig.bus.read(spot + 0x100, 10) == b"sync copy!"


def test_engine_raises_its_completion_interrupt(engine: Engine, spot: int):
    """With IRQ_ENABLE, NAME.irq goes high once the copy is done."""
    engine.program(spot, spot + 0x100, 16)
    engine.start(IRQ_ENABLE)
    wait_for(engine.irq, message=f"{engine.name}.irq did not rise")
    assert engine.reg(STATUS) & DONE


def test_engine_clearing_done_lowers_its_interrupt(engine: Engine, spot: int):
    """Writing 1 to DONE in STATUS clears it and lowers the line."""
    engine.program(spot, spot + 0x100, 16)
    engine.start(IRQ_ENABLE)
    wait_for(engine.irq, message=f"{engine.name}.irq did not rise")
    engine.set(STATUS, DONE)
    assert not engine.reg(STATUS) & DONE
    assert not engine.irq()


def test_engine_without_irq_enable_keeps_its_line_low(engine: Engine, spot: int):
    """A copy without IRQ_ENABLE sets DONE but leaves the line low."""
    engine.program(spot, spot + 0x100, 16)
    engine.start()
    engine.wait_done()
    assert not engine.irq()


def test_engine_line_follows_irq_enable_while_done(engine: Engine, spot: int):
    """Turning IRQ_ENABLE on after a copy finished raises the line (DONE is set)."""
    engine.program(spot, spot + 0x100, 16)
    engine.start()
    engine.wait_done()
    engine.set(CTRL, IRQ_ENABLE)
    wait_for(engine.irq, timeout=1.5, message=f"{engine.name}.irq stayed low")


def test_engine_starting_a_new_copy_lowers_the_completion_interrupt(engine: Engine, spot: int):
    """While a second copy is in flight (DONE clear, BUSY set) the completion line is low."""
    engine.program(spot, spot + 0x100, 16)
    engine.start(IRQ_ENABLE)
    wait_for(engine.irq, message=f"{engine.name}.irq did not rise")
    key = token()
    engine.rig.bus.write(spot, u32(key))
    engine.program(spot, gate_for(engine), 4)
    try:
        engine.start(IRQ_ENABLE)
        assert engine.reg(STATUS) & (BUSY | DONE) == BUSY
        wait_for(lambda: not engine.irq(), timeout=1.5, message="the line stayed high")
    finally:
        open_gate(engine.rig, key)
        engine.wait_done()


def test_engine_copy_from_a_hole_sets_error_and_decode_error(engine: Engine, spot: int):
    """Copying from an address nothing is mapped at ends with ERROR and RESULT DECODE_ERROR."""
    engine.program(HOLE, spot, 16)
    engine.start()
    status = engine.wait_done()
    assert status & ERROR
    assert engine.reg(RESULT) == MemTxResult.DECODE_ERROR


def test_engine_copy_into_a_hole_sets_error_and_decode_error(engine: Engine, spot: int):
    """Copying to an address nothing is mapped at ends with ERROR and RESULT DECODE_ERROR."""
    engine.program(spot, HOLE, 16)
    engine.start()
    assert engine.wait_done() & ERROR
    assert engine.reg(RESULT) == MemTxResult.DECODE_ERROR


@pytest.mark.parametrize("direction", ["from", "into"])
def test_engine_sync_copy_touching_its_own_registers_is_refused(
    engine: Engine, spot: int, direction: str
):
    """A SYNC copy from (or into) the engine's own registers is a re-entrant cycle: the bus
    answers its DMA with ACCESS_ERROR, which RESULT shows, and the START write is answered OK
    (no deadlock, no deadline expiry)."""
    if direction == "from":
        engine.program(engine.base + SRC_LO, spot, 4)
    else:
        engine.program(spot, engine.base + SRC_LO, 4)
    assert engine.start(SYNC) == OK
    assert engine.reg(STATUS) & (DONE | ERROR) == DONE | ERROR
    assert engine.reg(RESULT) == MemTxResult.ACCESS_ERROR


def test_engine_background_copy_of_its_own_registers_is_refused(engine: Engine, spot: int):
    """A background copy reaching the engine's own registers is refused with ACCESS_ERROR."""
    engine.program(engine.base + SRC_LO, spot, 4)
    engine.start()
    assert engine.wait_done() & ERROR
    assert engine.reg(RESULT) == MemTxResult.ACCESS_ERROR


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("dma0_remote", "dma1_remote"),
        ("dma0_local", "dma1_local"),
        ("dma0_remote", "dma1_local"),
        ("dma0_local", "dma1_remote"),
    ],
)
def test_cycle_a_to_b_to_a_is_refused_with_access_error(dma: Rig, spot: int, a: str, b: str):
    """A's SYNC copy starts B's SYNC copy, which reads A's registers: B's DMA is refused with
    ACCESS_ERROR, A's own copy completes, and the client's START write is answered OK."""
    ea, eb = Engine(dma, a), Engine(dma, b)
    dma.bus.write(spot, u32(START | SYNC))
    eb.program(ea.base + SRC_LO, spot + 0x100, 4)
    ea.program(spot, eb.base + CTRL, 4)
    assert ea.start(SYNC) == OK
    assert eb.reg(STATUS) & (DONE | ERROR) == DONE | ERROR
    assert eb.reg(RESULT) == MemTxResult.ACCESS_ERROR
    assert ea.reg(STATUS) & (DONE | ERROR | BUSY) == DONE
    assert ea.reg(RESULT) == OK


@pytest.mark.parametrize(
    ("m", "e"),
    [
        ("master_remote", "dma0_remote"),
        ("master_local", "dma0_remote"),
        pytest.param(
            "master_local",
            "dma0_local",
        ),
        pytest.param(
            "master_remote",
            "dma0_local",
        ),
    ],
)
def test_background_copy_may_read_the_device_that_started_it(dma: Rig, spot: int, m: str, e: str):
    """A device's DMA starts a background copy (no SYNC) that reads that device's registers
    after the starting write was answered: no cycle, so it succeeds, in either mode."""
    master, eng = Master(dma, m), Engine(dma, e)
    eng.program(master.base + M_DATA, spot, 4)
    assert master.command(CMD_WRITE, eng.base + CTRL, data=START, length=4) == OK
    assert not eng.wait_done() & ERROR
    assert eng.reg(RESULT) == OK
    assert dma.bus.read(spot, 4) == u32(START)


def test_engine_waiting_for_background_dma_answers_mmio(engine: Engine, spot: int):
    """While its background copy waits on a slow target, the engine answers reads of its
    registers (BUSY, the programmed addresses); the copy completes when the target does."""
    key = token()
    engine.rig.bus.write(spot, u32(key))
    target = gate_for(engine)
    engine.program(spot, target, 4)
    try:
        assert engine.start() == OK
        assert engine.reg(STATUS) & (BUSY | DONE) == BUSY
        assert engine.reg(SRC_LO) == spot
        assert engine.reg(DST_LO) == target
    finally:
        open_gate(engine.rig, key)
    assert not engine.wait_done() & ERROR
    assert engine.rig.bus.read_u32(target) == key


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(
            "dma0_remote",
        ),
        "dma0_local",
    ],
    indirect=True,
)
def test_engine_waiting_for_sync_dma_answers_mmio(engine: Engine, spot: int):
    """While a SYNC copy (inside the START write) waits on a slow target, a read of STATUS is
    answered, with BUSY set."""
    key = token()
    engine.rig.bus.write(spot, u32(key))
    target = gate_for(engine)
    engine.program(spot, target, 4)
    outcome: list[MemTxResult] = []
    with Bus(engine.rig.address) as other:
        writer = threading.Thread(target=lambda: outcome.append(engine.start(SYNC, other)))
        writer.start()
        try:
            while True:
                r = engine.rig.bus.read(engine.base + STATUS, 4, check=False)
                assert r.result == OK, "STATUS was not answered while the copy waited"
                if le(r.data) & BUSY:
                    break
        finally:
            open_gate(engine.rig, key)
            writer.join(60)
    assert engine.rig.bus.read_u32(target) == key
