"""The example models, register by register: the scratch RAM (every access size, reset, a
region it registers itself), and the parts of the UART, timer and DMA engine that the interrupt
and DMA tests do not cover.

One server for the module; each model runs as a process (``*_remote``) and inside the server
(``*_local``), and each test resets the device it uses first.
"""

from __future__ import annotations

import itertools
import random

import pytest
from mmiobus.client import MemTxResult
from mmiobus.devices.models import uart16550 as U
from support.devices import DeviceProcess, start_device
from support.dma_engine import (
    BUSY,
    CTRL,
    DONE,
    DST_HI,
    DST_LO,
    ERROR,
    LEN,
    RESULT,
    SRC_HI,
    SRC_LO,
    START,
    STATUS,
)
from support.machines import HOLE, RAM_SIZE, device_machine, in_server, mmio
from support.models import DMA_ENGINE, SCRATCH, TIMER, UART, target
from support.models.gate import Gate
from support.rig import Rig, RigFactory
from support.spots import Spots
from support.timer import (
    ENABLE,
    EXPIRED,
    IRQ_ENABLE,
    PERIODIC,
    T_COUNT,
    T_CTRL,
    T_PERIOD,
    T_STATUS,
    BusTimer,
    let_periods_pass,
)
from support.wait import wait_for
from support.words import le, u32

SCRATCH_SIZE, FILL = 0x100, 0x5A
SCRATCHES = {"scratch_remote": 0x10000000, "scratch_local": 0x10001000}
UARTS = {"uart_remote": 0x10010000, "uart_local": 0x10011000}
TIMERS = {"timer_remote": 0x10020000, "timer_local": 0x10021000}
# timer -> (region, address) of a second timer hosted alike, for let_periods_pass
WITNESSES = {
    "timer_remote": ("witness_remote", 0x10022000),
    "timer_local": ("witness_local", 0x10023000),
}
ENGINES = {"dma_remote": 0x10030000, "dma_local": 0x10031000}
GATE = 0x10040000
AT = 0x10100000  # where a test's device registers its own region
SPOTS = Spots(0x100000, 0x10000, RAM_SIZE)
TOKENS = itertools.count(0x6000_0001)


@pytest.fixture(scope="module")
def models(machine_rig: RigFactory, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    workdir = tmp_path_factory.mktemp("models")
    gates = workdir / "gates"
    gates.mkdir()
    regions, devices = [], []

    def add(name: str, addr: int, size: int, cls: str, args: dict, **kw) -> None:
        remote = name.endswith("_remote")
        regions.append(mmio(name, addr, size, name if remote else in_server(cls, **args), **kw))
        if remote:
            devices.append((cls, name, [f"--arg={k}={v}" for k, v in args.items()]))

    for name, addr in SCRATCHES.items():
        add(name, addr, SCRATCH_SIZE, SCRATCH, {"size": SCRATCH_SIZE, "fill": FILL})
    for name, addr in UARTS.items():
        args = {"output": f"file:{workdir / name}.out"}
        add(name, addr, 0x100, UART, args, valid=(1, 4), impl=(1, 1))
    for name, addr in [*TIMERS.items(), *WITNESSES.values()]:
        add(name, addr, 0x10, TIMER, {}, valid=(4, 4), impl=(4, 4))
    for name, addr in ENGINES.items():
        add(name, addr, 0x20, DMA_ENGINE, {}, valid=(4, 4), impl=(4, 4))
    regions.append(mmio("gate", GATE, 0x10, "gate", valid=(4, 4), impl=(4, 4), deadline="60s"))
    devices.append((target(Gate), "gate", [f"--arg=gate_dir={gates}"]))
    rig = machine_rig(device_machine(regions), devices)
    rig.extra.update(gates=gates, workdir=workdir)
    return rig


def _device(rig: Rig, name: str, table: dict[str, int]) -> int:
    rig.bus.reset_device(name)
    return table[name]


# -- scratch RAM ----------------------------------------------------------------------------------


@pytest.fixture(params=list(SCRATCHES))
def scratch(request: pytest.FixtureRequest, models: Rig) -> tuple[Rig, int]:
    return models, _device(models, request.param, SCRATCHES)


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_scratch_reads_back_what_was_written_at_each_size(scratch: tuple[Rig, int], size: int):
    """Every aligned access of `size` bytes reads back the bytes written there."""
    rig, base = scratch
    rng = random.Random(size)
    data = {off: rng.randbytes(size) for off in range(0, SCRATCH_SIZE, size)}
    for off, chunk in data.items():
        rig.bus.write(base + off, chunk)
    for off, chunk in data.items():
        assert rig.bus.read(base + off, size) == chunk


def test_scratch_accesses_of_different_sizes_see_the_same_bytes(scratch: tuple[Rig, int]):
    """Bytes written as one 8-byte value read back piecewise (1, 2, 4 bytes) in bus order."""
    rig, base = scratch
    data = bytes(range(0xA0, 0xA8))
    rig.bus.write(base + 0x40, data)
    for size in (1, 2, 4):
        pieces = b"".join(rig.bus.read(base + 0x40 + o, size) for o in range(0, 8, size))
        assert pieces == data
    rig.bus.write(base + 0x42, b"\x11\x22")
    assert rig.bus.read(base + 0x40, 8) == data[:2] + b"\x11\x22" + data[4:]


def test_scratch_starts_filled_with_its_fill_byte(scratch: tuple[Rig, int]):
    """After a reset every byte holds the `fill` argument."""
    rig, base = scratch
    got = b"".join(rig.bus.read(base + o, 8) for o in range(0, SCRATCH_SIZE, 8))
    assert got == bytes([FILL]) * SCRATCH_SIZE


@pytest.mark.parametrize("name", list(SCRATCHES))
def test_scratch_reset_restores_the_fill(models: Rig, name: str):
    """reset_device puts the fill byte back everywhere."""
    base = _device(models, name, SCRATCHES)
    pristine = models.bus.read(base, 8)
    models.bus.write(base, bytes(range(8)))
    assert models.bus.read(base, 8) != pristine
    models.bus.reset_device(name)
    assert models.bus.read(base, 8) == pristine


def test_scratch_registered_with_at_serves_its_own_region(models: Rig):
    """`mmiobus device run ScratchRam --at ADDR --size N` registers a region of N bytes there,
    listed under the device's name, that reads back what is written."""
    proc = start_scratch_at(models, "scratch_at")
    try:
        info = next(d for d in models.bus.devices() if d.name == "scratch_at")
        assert list(info.regions) == ["scratch_at"]
        assert models.bus.read(AT, 4) == bytes([FILL]) * 4
        models.bus.write(AT + 0x38, b"12345678")
        assert models.bus.read(AT + 0x38, 8) == b"12345678"
        assert "scratch_at" in models.bus.mtree()
    finally:
        proc.stop()


def test_scratch_registered_region_goes_away_with_its_device(models: Rig):
    """When the device that registered a region leaves, the region is unmapped: the address
    answers as a hole does."""
    hole = models.bus.read(HOLE, 4, check=False)
    proc = start_scratch_at(models, "scratch_gone")
    assert models.bus.read(AT, 4, check=False).result == MemTxResult.OK
    proc.stop()
    wait_for(lambda: models.bus.read(AT, 4, check=False) == hole, message="the region stayed")
    assert "scratch_gone" not in models.bus.mtree()


def start_scratch_at(models: Rig, name: str) -> DeviceProcess:
    """ScratchRam registering its own 0x40-byte region at AT, as a process named ``name``."""
    args = ["--at", hex(AT), "--size", "0x40", "--arg", f"fill={FILL}", "--name", name]
    proc = start_device(SCRATCH, models.address, *args)
    models.devices[name] = proc
    return proc


# -- UART -----------------------------------------------------------------------------------------


class Uart:
    def __init__(self, rig: Rig, name: str) -> None:
        self.rig, self.name = rig, name
        self.base = _device(rig, name, UARTS)
        self.output = rig.extra["workdir"] / f"{name}.out"

    def reg(self, offset: int) -> int:
        return self.rig.bus.read_u8(self.base + offset)

    def set(self, offset: int, value: int) -> None:
        self.rig.bus.write_u8(self.base + offset, value)

    def line(self) -> bool:
        return self.rig.bus.irqs(f"{self.name}.irq").get(f"{self.name}.irq", False)

    def output_bytes(self) -> bytes:
        return self.output.read_bytes() if self.output.exists() else b""

    def loop_in(self, data: bytes) -> None:
        """Receive ``data`` through loopback (then leave loopback)."""
        self.set(U.MCR, U.LOOPBACK)
        for byte in data:
            self.set(U.RBR, byte)
        self.set(U.MCR, 0)


@pytest.fixture(params=list(UARTS))
def uart(request: pytest.FixtureRequest, models: Rig) -> Uart:
    return Uart(models, request.param)


def test_uart_dlab_gives_the_divisor_latch(uart: Uart):
    """With LCR.DLAB set, offsets 0 and 1 are the divisor latch: written values read back and
    nothing is transmitted; clearing DLAB brings back RBR/THR and IER."""
    before = uart.output_bytes()
    uart.set(U.IER, U.IER_RDA)
    uart.set(U.LCR, U.DLAB | 0x03)
    uart.set(U.RBR, 0x34)
    uart.set(U.IER, 0x12)
    assert (uart.reg(U.RBR), uart.reg(U.IER)) == (0x34, 0x12)
    assert uart.reg(U.LCR) == U.DLAB | 0x03
    uart.set(U.LCR, 0x03)
    assert uart.reg(U.IER) == U.IER_RDA
    assert uart.output_bytes() == before


def test_uart_lsr_reports_the_transmitter_empty(uart: Uart):
    """LSR always shows THRE and TEMT (transmission is instant), and DR only with data."""
    assert uart.reg(U.LSR) == U.LSR_THRE | U.LSR_TEMT
    uart.loop_in(b"x")
    assert uart.reg(U.LSR) == U.LSR_THRE | U.LSR_TEMT | U.LSR_DR


def test_uart_scratch_register_reads_back(uart: Uart):
    """SCR holds any byte written."""
    uart.set(U.SCR, 0xC3)
    assert uart.reg(U.SCR) == 0xC3


def test_uart_thre_interrupt_is_acknowledged_by_reading_iir(uart: Uart):
    """Enabling the THRE interrupt raises the line; IIR then says THRE once, which lowers it."""
    uart.set(U.IER, U.IER_THRE)
    assert uart.line()
    assert uart.reg(U.IIR) == U.IIR_THRE
    assert not uart.line()
    assert uart.reg(U.IIR) == U.IIR_NONE


def test_uart_writing_thr_rearms_the_thre_interrupt(uart: Uart):
    """After the THRE interrupt was acknowledged, the next transmitted byte raises it again."""
    uart.set(U.IER, U.IER_THRE)
    uart.reg(U.IIR)
    uart.set(U.RBR, ord("!"))  # THR
    assert uart.line()


def test_uart_iir_reports_received_data_before_thre(uart: Uart):
    """With both causes pending, IIR names received data first."""
    uart.loop_in(b"r")
    uart.set(U.IER, U.IER_RDA | U.IER_THRE)
    assert uart.reg(U.IIR) == U.IIR_RDA
    uart.reg(U.RBR)
    assert uart.reg(U.IIR) == U.IIR_THRE


def test_uart_iir_shows_the_fifo_bits_when_fifos_are_enabled(uart: Uart):
    """FCR bit 0 sets IIR's FIFO-enabled bits."""
    uart.set(U.IIR, 0x01)  # FCR
    assert uart.reg(U.IIR) & U.IIR_FIFO == U.IIR_FIFO


def test_uart_fcr_clears_the_receive_fifo(uart: Uart):
    """Writing FCR bit 1 drops received bytes: DR clears."""
    uart.loop_in(b"abc")
    assert uart.reg(U.LSR) & U.LSR_DR
    uart.set(U.IIR, 0x02)  # FCR: clear the receive FIFO
    assert not uart.reg(U.LSR) & U.LSR_DR


def test_uart_reset_drops_received_bytes_and_lowers_the_line(uart: Uart):
    """reset_device empties the receive FIFO and lowers a raised line."""
    uart.set(U.IER, U.IER_RDA)
    uart.loop_in(b"abc")
    assert uart.line()
    uart.rig.bus.reset_device(uart.name)
    assert not uart.reg(U.LSR) & U.LSR_DR
    assert not uart.line()


def test_uart_word_access_reads_four_byte_registers(uart: Uart):
    """A 4-byte read is split into four 1-byte register reads, assembled in bus order."""
    uart.set(U.MCR, 0x03)
    uart.set(U.SCR, 0x9E)
    word = uart.rig.bus.read(uart.base + U.MCR, 4)
    assert list(word) == [uart.reg(U.MCR + i) for i in range(4)]


# -- timer ----------------------------------------------------------------------------------------

PERIOD_US = 2000


@pytest.fixture(params=list(TIMERS))
def timer(request: pytest.FixtureRequest, models: Rig) -> BusTimer:
    return BusTimer(models, request.param, TIMERS[request.param], PERIOD_US)


@pytest.fixture
def witness(timer: BusTimer) -> BusTimer:
    """A second timer hosted like ``timer`` (a process, or the server), reset, stopped."""
    name, base = WITNESSES[timer.name]
    return BusTimer(timer.rig, name, base, PERIOD_US)


def test_timer_period_reads_back(timer: BusTimer):
    """PERIOD holds the value written."""
    timer.set(T_PERIOD, 123456)
    assert timer.reg(T_PERIOD) == 123456


def test_timer_count_is_read_only(timer: BusTimer):
    """Writes to COUNT are ignored."""
    before = timer.reg(T_COUNT)
    timer.set(T_COUNT, before + 1000)
    assert timer.reg(T_COUNT) == before


def test_timer_status_cannot_be_set_by_software(timer: BusTimer):
    """Writing STATUS on an idle timer leaves it as it was, EXPIRED clear (only an expiry
    sets it)."""
    before = timer.reg(T_STATUS)
    timer.set(T_STATUS, 0xFFFFFFFF)
    assert timer.reg(T_STATUS) == before
    assert not before & EXPIRED


def test_timer_without_irq_enable_sets_expired_but_not_the_line(timer: BusTimer):
    """An expiry without IRQ_ENABLE sets EXPIRED and COUNT but leaves the line low."""
    timer.set(T_CTRL, ENABLE)
    wait_for(lambda: timer.reg(T_STATUS) & EXPIRED, message="the timer did not expire")
    assert timer.reg(T_COUNT) >= 1
    assert not timer.line()


def test_timer_reset_stops_the_countdown_and_lowers_the_line(timer: BusTimer, witness: BusTimer):
    """reset_device stops a running periodic timer, clears COUNT and STATUS and lowers the
    line; nothing counts afterwards, while a timer hosted alike counts many periods."""
    fresh = (timer.reg(T_CTRL), timer.reg(T_STATUS), timer.reg(T_COUNT))
    timer.set(T_CTRL, ENABLE | PERIODIC | IRQ_ENABLE)
    wait_for(timer.line, message="the timer's line did not rise")
    timer.rig.bus.reset_device(timer.name)
    assert not timer.line()
    let_periods_pass(witness, 20)  # time for many periods
    assert (timer.reg(T_CTRL), timer.reg(T_STATUS), timer.reg(T_COUNT)) == fresh
    assert not timer.line()


# -- DMA engine -----------------------------------------------------------------------------------


class Engine:
    def __init__(self, rig: Rig, name: str) -> None:
        self.rig, self.name = rig, name
        self.base = _device(rig, name, ENGINES)

    def reg(self, offset: int) -> int:
        return self.rig.bus.read_u32(self.base + offset)

    def set(self, offset: int, value: int) -> None:
        self.rig.bus.write_u32(self.base + offset, value)

    def program(self, src: int, dst: int, length: int) -> None:
        for offset, value in zip(
            (SRC_LO, SRC_HI, DST_LO, DST_HI, LEN),
            (src & 0xFFFFFFFF, src >> 32, dst & 0xFFFFFFFF, dst >> 32, length),
            strict=True,
        ):
            self.set(offset, value)

    def wait_done(self) -> int:
        return wait_for(
            lambda: (s := self.reg(STATUS)) & DONE and not s & BUSY and s,
            message=f"{self.name} did not finish",
        )


@pytest.fixture(params=list(ENGINES))
def engine(request: pytest.FixtureRequest, models: Rig) -> Engine:
    return Engine(models, request.param)


def test_dma_registers_read_back(engine: Engine):
    """SRC, DST (both halves) and LEN hold what was written."""
    values = {SRC_LO: 0x11111111, SRC_HI: 0x2222, DST_LO: 0x33333333, DST_HI: 0x44, LEN: 0x5555}
    for offset, value in values.items():
        engine.set(offset, value)
    assert {o: engine.reg(o) for o in values} == values


def test_dma_busy_and_result_are_read_only(engine: Engine):
    """Software cannot set BUSY (or DONE, ERROR) in STATUS, nor write RESULT."""
    before = (engine.reg(STATUS), engine.reg(RESULT))
    engine.set(STATUS, BUSY | DONE | ERROR)
    engine.set(RESULT, 0x7)
    assert (engine.reg(STATUS), engine.reg(RESULT)) == before
    assert not before[0] & BUSY


def test_dma_zero_length_copy_completes_without_error(engine: Engine):
    """START with LEN 0 completes with DONE, no ERROR, RESULT OK."""
    spot = next(SPOTS)
    engine.program(spot, spot + 0x100, 0)
    engine.set(CTRL, START)
    assert not engine.wait_done() & ERROR
    assert engine.reg(RESULT) == MemTxResult.OK


def test_dma_error_is_write_one_to_clear(engine: Engine):
    """After a failed copy, writing 1 to ERROR clears it and leaves DONE alone."""
    engine.program(HOLE, next(SPOTS), 4)
    engine.set(CTRL, START)
    assert engine.wait_done() & ERROR
    engine.set(STATUS, ERROR)
    assert engine.reg(STATUS) & (DONE | ERROR) == DONE


def test_dma_uses_the_high_halves_of_addresses(engine: Engine):
    """SRC_HI counts: a source 4 GiB above RAM data is a hole, so the copy fails."""
    spot = next(SPOTS)
    engine.rig.bus.write(spot, b"data")
    engine.program(spot + (1 << 32), spot + 0x100, 4)
    engine.set(CTRL, START)
    assert engine.wait_done() & ERROR
    assert engine.reg(RESULT) == MemTxResult.DECODE_ERROR
    assert engine.rig.bus.read(spot + 0x100, 4) != b"data"


def test_dma_start_while_busy_is_ignored(models: Rig):
    """A second START while a copy is in flight neither restarts it nor changes its target."""
    engine = Engine(models, "dma_remote")
    spot, key = next(SPOTS), next(TOKENS)
    models.bus.write(spot, u32(key))
    engine.program(spot, GATE, 4)
    try:
        engine.set(CTRL, START)
        assert engine.reg(STATUS) & BUSY
        engine.program(spot, spot + 0x100, 4)
        engine.set(CTRL, START)
        assert engine.reg(STATUS) & (BUSY | DONE) == BUSY
    finally:
        (models.extra["gates"] / f"{key:x}").touch()
    assert not engine.wait_done() & ERROR
    assert le(models.bus.read(GATE, 4)) == key
    assert models.bus.read(spot + 0x100, 4) == bytes(4)
