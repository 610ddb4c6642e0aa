"""Interrupt lines as a client sees them: GetIrqs, WatchIrqs, `mmiobus irqs [--watch]`; the timer
and UART models raising and lowering theirs; lines of a device that goes away.

One server for the module; devices run as processes (``*_remote``) and inside the server
(``*_local``). Each test resets the devices it uses first.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import pytest
from mmiobus.client import AsyncBus
from mmiobus.v1 import devices_pb2, devices_pb2_grpc
from support.command_line import Background, mmiobus
from support.machines import device_machine, in_server, mmio
from support.models import TIMER, UART, target
from support.models.irq_lines import LINES as LINE_NAMES
from support.models.irq_lines import PULSE, IrqLines
from support.models.irq_lines import STORM as STORM_OFFSET
from support.ports import free_port
from support.rig import Rig, RigFactory
from support.timer import (
    ENABLE,
    EXPIRED,
    IRQ_ENABLE,
    PERIODIC,
    T_COUNT,
    T_CTRL,
    T_STATUS,
    BusTimer,
    let_periods_pass,
)
from support.wait import wait_for

IRQ_LINES = target(IrqLines)
LINES = {"lines_remote": 0x10000000, "lines_local": 0x10001000}
TMP_LINES = ("lines_tmp", 0x10002000)
STORM = ("storm_local", 0x10003000)  # in the server: its background pulses run on the bus's loop
TIMERS = {"timer_remote": 0x10010000, "timer_local": 0x10011000}
# timer -> (region, address) of a second timer hosted alike, for let_periods_pass
WITNESSES = {
    "timer_remote": ("witness_remote", 0x10012000),
    "timer_local": ("witness_local", 0x10013000),
}
UARTS = {"uart_remote": 0x10020000, "uart_local": 0x10021000}

PERIOD_US = 2000  # of the timers

# 16550 registers and bits (mmiobus.devices.models.uart16550).
RBR, THR, IER, LSR, MCR = 0, 0, 1, 5, 4
IER_RDA, LSR_DR, LOOPBACK = 0x01, 0x01, 0x10


@pytest.fixture(scope="module")
def irqs(machine_rig: RigFactory, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    workdir = tmp_path_factory.mktemp("irqs")
    regions, devices = [], []
    for name, addr in LINES.items():
        remote = name.endswith("_remote")
        regions.append(mmio(name, addr, 0x100, name if remote else in_server(IRQ_LINES)))
        if remote:
            devices.append((IRQ_LINES, name, []))
    regions.append(mmio(TMP_LINES[0], TMP_LINES[1], 0x100, TMP_LINES[0]))
    regions.append(mmio(STORM[0], STORM[1], 0x100, in_server(IRQ_LINES)))
    for name, addr in [*TIMERS.items(), *WITNESSES.values()]:
        remote = name.endswith("_remote")
        device = name if remote else in_server(TIMER)
        regions.append(mmio(name, addr, 0x10, device, valid=(4, 4), impl=(4, 4)))
        if remote:
            devices.append((TIMER, name, []))
    ports, outputs = {}, {}
    for name, addr in UARTS.items():
        remote = name.endswith("_remote")
        ports[name], outputs[name] = free_port(), workdir / f"{name}.out"
        args = {"output": f"file:{outputs[name]}", "input": f"tcp:127.0.0.1:{ports[name]}"}
        device = name if remote else in_server(UART, **args)
        regions.append(mmio(name, addr, 0x100, device, valid=(1, 4), impl=(1, 1)))
        if remote:
            devices.append((UART, name, [f"--arg={k}={v}" for k, v in args.items()]))
    rig = machine_rig(device_machine(regions), devices)
    rig.extra.update(ports=ports, outputs=outputs)
    return rig


class Lines:
    """A support.models.irq_lines.IrqLines device: its lines follow what the test writes."""

    def __init__(self, rig: Rig, name: str, base: int | None = None) -> None:
        self.rig, self.name = rig, name
        self.base = LINES[name] if base is None else base

    def set(self, line: str, level: bool) -> None:
        self.rig.bus.write(self.base + 8 * LINE_NAMES.index(line), bytes([int(level)]))

    def pulse(self, line: str) -> None:
        self.rig.bus.write(self.base + PULSE + 8 * LINE_NAMES.index(line), b"\1")

    def full(self, line: str) -> str:
        return f"{self.name}.{line}"

    def prime(self) -> None:
        """Reset, then make every line exist on the bus (raised once), all low."""
        self.rig.bus.reset_device(self.name)
        for line in LINE_NAMES:
            self.set(line, True)
            self.set(line, False)


@pytest.fixture(params=list(LINES))
def lines(request: pytest.FixtureRequest, irqs: Rig) -> Lines:
    lines = Lines(irqs, request.param)
    lines.prime()
    return lines


@pytest.fixture
def both(irqs: Rig) -> list[Lines]:
    out = [Lines(irqs, name) for name in LINES]
    for lines in out:
        lines.prime()
    return out


# -- GetIrqs --------------------------------------------------------------------------------------


def test_get_irqs_reports_the_levels_devices_set(lines: Lines):
    """GetIrqs gives each line the level its device last set."""
    levels = {"irq": True, "tx": False, "rx": True, "err": False}
    for line, level in levels.items():
        lines.set(line, level)
    assert lines.rig.bus.irqs(f"{lines.name}.*") == {lines.full(k): v for k, v in levels.items()}


def test_get_irqs_selects_lines_by_glob(both: list[Lines]):
    """Glob patterns select lines across devices; several patterns add up."""
    bus = both[0].rig.bus
    got = bus.irqs("*.?x")
    assert set(got) == {d.full(line) for d in both for line in ("tx", "rx")}
    picked = bus.irqs(both[0].full("irq"), both[1].full("err"))
    assert set(picked) == {both[0].full("irq"), both[1].full("err")}


def test_get_irqs_without_patterns_lists_every_line_sorted(both: list[Lines]):
    """With no pattern GetIrqs lists every line, sorted by name."""
    names = list(both[0].rig.bus.irqs())
    assert names == sorted(names)
    assert {d.full(line) for d in both for line in LINE_NAMES} <= set(names)


def test_get_irqs_counts_level_changes(lines: Lines):
    """A line's `changes` grows by one per change of level (a pulse of a low line is two)."""
    name = lines.full("tx")

    def changes() -> int:
        with grpc.insecure_channel(lines.rig.address) as channel:
            stub = devices_pb2_grpc.DevicesStub(channel)
            reply = stub.GetIrqs(devices_pb2.GetIrqsRequest(lines=[name]), timeout=20)
        return reply.lines[0].changes

    before = changes()
    lines.set("tx", True)
    lines.set("tx", True)  # no change
    lines.set("tx", False)
    lines.pulse("tx")
    assert changes() - before == 4


def test_reset_device_lowers_its_lines(lines: Lines):
    """Resetting a device (process or in the server) lowers every line it had raised."""
    for line in LINE_NAMES:
        lines.set(line, True)
    assert all(lines.rig.bus.irqs(f"{lines.name}.*").values())
    lines.rig.bus.reset_device(lines.name)
    assert not any(lines.rig.bus.irqs(f"{lines.name}.*").values())


# -- WatchIrqs ------------------------------------------------------------------------------------


async def _next(agen, timeout: float = 20.0):
    return await asyncio.wait_for(agen.__anext__(), timeout)


async def _write(bus: AsyncBus, lines: Lines, line: str, level: bool) -> None:
    await bus.write(lines.base + 8 * LINE_NAMES.index(line), bytes([int(level)]))


async def test_watch_irqs_starts_with_a_snapshot_of_current_levels(lines: Lines):
    """WatchIrqs first sends every matching line's current level, marked snapshot, numbered
    from 1, in name order."""
    lines.set("rx", True)
    expected = lines.rig.bus.irqs(f"{lines.name}.*")
    async with AsyncBus(lines.rig.address) as bus:
        agen = bus.watch_irqs(f"{lines.name}.*")
        try:
            events = [await _next(agen) for _ in expected]
        finally:
            await agen.aclose()
    assert [(e.line, e.level) for e in events] == list(expected.items())
    assert all(e.snapshot for e in events)
    assert [e.sequence for e in events] == list(range(1, len(expected) + 1))


async def test_watch_irqs_then_reports_each_change_in_order(lines: Lines):
    """After the snapshot, WatchIrqs reports every change in the order it happened, with
    sequence numbers going on by one and timestamps not going backwards."""
    changes = [("irq", True), ("tx", True), ("irq", False), ("rx", True), ("tx", False)]
    async with AsyncBus(lines.rig.address) as bus:
        agen = bus.watch_irqs(f"{lines.name}.*")
        try:
            snapshot = [await _next(agen) for _ in LINE_NAMES]
            for line, level in changes:
                await _write(bus, lines, line, level)
            events = [await _next(agen) for _ in changes]
        finally:
            await agen.aclose()
    assert [(e.line, e.level) for e in events] == [(lines.full(n), v) for n, v in changes]
    assert not any(e.snapshot for e in events)
    first = len(snapshot) + 1
    assert [e.sequence for e in events] == list(range(first, first + len(changes)))
    stamps = [e.timestamp_ns for e in events]
    assert stamps == sorted(stamps)


async def test_watch_irqs_reports_a_pulse_as_a_raise_then_a_lower(lines: Lines):
    """A pulse of a low line shows as two changes: high, then low."""
    async with AsyncBus(lines.rig.address) as bus:
        agen = bus.watch_irqs(lines.full("err"))
        try:
            await _next(agen)  # the snapshot
            await bus.write(lines.base + PULSE + 8 * LINE_NAMES.index("err"), b"\1")
            events = [await _next(agen) for _ in range(2)]
        finally:
            await agen.aclose()
    err = lines.full("err")
    assert [(e.line, e.level) for e in events] == [(err, True), (err, False)]


async def test_watch_irqs_only_reports_lines_matching_its_patterns(both: list[Lines]):
    """A watch with a glob gets neither the snapshot nor the changes of other lines."""
    local = next(d for d in both if d.name == "lines_local")
    remote = next(d for d in both if d.name == "lines_remote")
    async with AsyncBus(local.rig.address) as bus:
        agen = bus.watch_irqs("lines_local.t*")
        try:
            snapshot = await _next(agen)
            for d in (remote, local):
                for line in ("rx", "tx"):
                    await _write(bus, d, line, True)
            await _write(bus, local, "tx", False)
            events = [await _next(agen) for _ in range(2)]
        finally:
            await agen.aclose()
    assert (snapshot.line, snapshot.snapshot) == ("lines_local.tx", True)
    tx = "lines_local.tx"
    assert [(e.line, e.level) for e in events] == [(tx, True), (tx, False)]


async def test_watch_irqs_sequence_follows_delivery_while_lines_change(irqs: Rig):
    """Even while lines change during the snapshot, events arrive numbered 1, 2, 3, ... with
    every snapshot event first."""
    async with AsyncBus(irqs.address) as bus:
        await bus.write(STORM[1] + STORM_OFFSET, (20_000).to_bytes(4, "little"))
        agen = bus.watch_irqs()
        try:
            events = [await _next(agen) for _ in range(200)]
        finally:
            await agen.aclose()
    snapshots = [e.snapshot for e in events]
    assert snapshots == sorted(snapshots, reverse=True)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))


def test_blocking_watch_irqs_yields_changes(lines: Lines):
    """Bus.watch_irqs (the blocking client) yields the snapshot, then changes."""
    events = lines.rig.bus.watch_irqs(lines.full("irq"))
    try:
        first = next(events)
        lines.set("irq", True)
        second = next(events)
    finally:
        events.close()
    assert (first.line, first.level, first.snapshot) == (lines.full("irq"), False, True)
    assert (second.line, second.level, second.snapshot) == (lines.full("irq"), True, False)


# -- the command line -----------------------------------------------------------------------------


def test_cli_irqs_prints_each_line_with_its_level(lines: Lines):
    """`mmiobus irqs PATTERN` prints `NAME LEVEL` per line, as GetIrqs reports them."""
    lines.set("irq", True)
    lines.set("rx", True)
    out = mmiobus("irqs", f"{lines.name}.*", "--server", lines.rig.address)
    assert out.returncode == 0, out.stderr
    expected = lines.rig.bus.irqs(f"{lines.name}.*")
    assert out.stdout.splitlines() == [f"{n} {int(v)}" for n, v in expected.items()]


def test_cli_irqs_watch_prints_snapshot_then_changes(lines: Lines):
    """`mmiobus irqs --watch PATTERN` prints the current levels, then each change as it
    happens."""
    lines.set("tx", True)
    expected = lines.rig.bus.irqs(f"{lines.name}.*")
    watch = Background("irqs", "--watch", f"{lines.name}.*", "--server", lines.rig.address)
    try:
        snapshot = [watch.line() for _ in expected]
        lines.set("tx", False)
        lines.pulse("err")
        changes = [watch.line() for _ in range(3)]
    finally:
        err = watch.close()
    assert snapshot == [f"{n} {int(v)}" for n, v in expected.items()], err
    full = lines.full
    assert changes == [f"{full('tx')} 0", f"{full('err')} 1", f"{full('err')} 0"], err


# -- a device that goes away ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_device_lines_go_low_and_are_forgotten_when_it_disconnects(irqs: Rig, how: str):
    """When a device process ends (cleanly or killed), the bus lowers all its lines (watchers
    see each drop: the next test) and forgets them: a device name that never comes back costs
    nothing."""
    proc = irqs.start(IRQ_LINES, TMP_LINES[0])
    tmp = Lines(irqs, TMP_LINES[0], TMP_LINES[1])
    tmp.set("irq", True)
    tmp.set("err", True)
    pattern = f"{tmp.name}.*"
    assert irqs.bus.irqs(pattern) == {tmp.full("irq"): True, tmp.full("err"): True}
    proc.kill() if how == "sigkill" else proc.stop()
    wait_for(lambda: irqs.bus.irqs(pattern) == {}, message="lines were not forgotten")


async def test_watch_irqs_sees_the_lines_of_a_vanished_device_drop(irqs: Rig):
    """A watcher gets the lowering of a killed device's raised line as a change."""
    proc = irqs.start(IRQ_LINES, TMP_LINES[0])
    tmp = Lines(irqs, TMP_LINES[0], TMP_LINES[1])
    async with AsyncBus(irqs.address) as bus:
        await _write(bus, tmp, "rx", True)
        agen = bus.watch_irqs(tmp.full("rx"))
        try:
            first = await _next(agen)
            proc.kill()
            dropped = await _next(agen)
        finally:
            await agen.aclose()
    assert (first.level, first.snapshot) == (True, True)
    assert (dropped.line, dropped.level, dropped.snapshot) == (tmp.full("rx"), False, False)


# -- the timer model ------------------------------------------------------------------------------


@pytest.fixture(params=list(TIMERS))
def timer(request: pytest.FixtureRequest, irqs: Rig) -> BusTimer:
    """A timer model (process or in the server), reset, with a short period."""
    return BusTimer(irqs, request.param, TIMERS[request.param], PERIOD_US)


@pytest.fixture
def witness(timer: BusTimer) -> BusTimer:
    """A second timer hosted like ``timer`` (a process, or the server), reset, stopped."""
    name, base = WITNESSES[timer.name]
    return BusTimer(timer.rig, name, base, PERIOD_US)


def test_timer_one_shot_raises_its_line(timer: BusTimer):
    """A one-shot timer with IRQ_ENABLE raises NAME.irq and sets EXPIRED when it fires."""
    timer.set(T_CTRL, ENABLE | IRQ_ENABLE)
    wait_for(timer.line, message="the timer's line did not rise")
    assert timer.reg(T_STATUS) & EXPIRED


def test_timer_one_shot_fires_once_and_disables_itself(timer: BusTimer, witness: BusTimer):
    """A one-shot timer counts one expiry and clears ENABLE; COUNT then stays put while a timer
    hosted alike counts many periods."""
    timer.set(T_CTRL, ENABLE | IRQ_ENABLE)
    wait_for(lambda: timer.reg(T_COUNT), message="the timer never expired")
    assert not timer.reg(T_CTRL) & ENABLE
    let_periods_pass(witness, 20)  # time for many more periods
    assert timer.reg(T_COUNT) == 1


def test_timer_periodic_count_keeps_increasing(timer: BusTimer):
    """A periodic timer counts expiry after expiry; COUNT never goes down."""
    timer.set(T_CTRL, ENABLE | PERIODIC | IRQ_ENABLE)
    seen = [timer.reg(T_COUNT)]
    wait_for(lambda: seen.append(timer.reg(T_COUNT)) or seen[-1] >= 3, message=f"{seen}")
    assert seen == sorted(seen)
    assert timer.reg(T_CTRL) & ENABLE


def test_timer_disabling_stops_the_count(timer: BusTimer, witness: BusTimer):
    """Writing CTRL without ENABLE stops a periodic timer: COUNT stays where it was while a
    timer hosted alike counts many periods."""
    timer.set(T_CTRL, ENABLE | PERIODIC)
    wait_for(lambda: timer.reg(T_COUNT) >= 2, message="the timer did not count")
    timer.set(T_CTRL, 0)
    count = timer.reg(T_COUNT)
    let_periods_pass(witness, 20)
    assert timer.reg(T_COUNT) == count


def test_timer_writing_one_to_status_lowers_the_line(timer: BusTimer):
    """Writing 1 to STATUS clears EXPIRED and lowers NAME.irq."""
    timer.set(T_CTRL, ENABLE | IRQ_ENABLE)
    wait_for(timer.line, message="the timer's line did not rise")
    timer.set(T_STATUS, EXPIRED)
    assert not timer.reg(T_STATUS) & EXPIRED
    assert not timer.line()


def test_timer_periodic_raises_the_line_again_after_a_clear(timer: BusTimer):
    """A periodic timer's next expiry raises the line again after software cleared it."""
    timer.set(T_CTRL, ENABLE | PERIODIC | IRQ_ENABLE)
    wait_for(timer.line, message="the timer's line did not rise")
    timer.set(T_STATUS, EXPIRED)
    count = timer.reg(T_COUNT)
    wait_for(lambda: timer.reg(T_COUNT) > count and timer.line(), message="no second expiry")


async def test_watch_irqs_sees_a_periodic_timer_toggle(timer: BusTimer):
    """A watcher sees the timer's line rise, then fall when STATUS is cleared, then rise."""
    name = f"{timer.name}.irq"
    timer.set(T_CTRL, ENABLE | IRQ_ENABLE)  # one expiry, so that the line exists (low after)
    wait_for(timer.line, message="the timer's line did not rise")
    timer.set(T_STATUS, EXPIRED)
    async with AsyncBus(timer.rig.address) as bus:
        agen = bus.watch_irqs(name)
        try:
            snapshot = await _next(agen)
            await bus.write_u32(timer.base + T_CTRL, ENABLE | PERIODIC | IRQ_ENABLE)
            levels = []
            while len(levels) < 3:
                event = await _next(agen)
                levels.append(event.level)
                if event.level:
                    await bus.write_u32(timer.base + T_STATUS, EXPIRED)
        finally:
            await agen.aclose()
            await bus.write_u32(timer.base + T_CTRL, 0)
    assert (snapshot.level, snapshot.snapshot) == (False, True)
    assert levels == [True, False, True]


# -- the UART model -------------------------------------------------------------------------------


class Uart:
    def __init__(self, rig: Rig, name: str) -> None:
        self.rig, self.name, self.base = rig, name, UARTS[name]
        self.port: int = rig.extra["ports"][name]
        self.output: Path = rig.extra["outputs"][name]
        rig.bus.reset_device(name)

    def reg(self, offset: int) -> int:
        return self.rig.bus.read_u8(self.base + offset)

    def set(self, offset: int, value: int) -> None:
        self.rig.bus.write_u8(self.base + offset, value)

    def line(self) -> bool:
        return self.rig.bus.irqs(f"{self.name}.irq").get(f"{self.name}.irq", False)

    def console(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=20)

    def output_bytes(self) -> bytes:
        return self.output.read_bytes() if self.output.exists() else b""


@pytest.fixture(params=list(UARTS))
def uart(request: pytest.FixtureRequest, irqs: Rig) -> Uart:
    """A 16550 model (process or in the server), reset, with a TCP console and a file output."""
    return Uart(irqs, request.param)


def test_uart_received_bytes_raise_its_line(uart: Uart):
    """With IER bit 0, bytes arriving on the console socket raise NAME.irq and set LSR.DR."""
    uart.set(IER, IER_RDA)
    assert not uart.line()
    with uart.console() as console:
        console.sendall(b"hi")
        wait_for(uart.line, message="the UART's line did not rise on receive")
    assert uart.reg(LSR) & LSR_DR
    while uart.reg(LSR) & LSR_DR:  # leave nothing behind
        uart.reg(RBR)


def test_uart_reading_rbr_drains_received_bytes_and_lowers_the_line(uart: Uart):
    """Reading RBR returns the received bytes in order; once drained DR clears and the line
    falls."""
    uart.set(IER, IER_RDA)
    data = b"hello, uart"
    with uart.console() as console:
        console.sendall(data)
        got = bytearray()

        def received_all() -> bool:
            if uart.reg(LSR) & LSR_DR:
                got.append(uart.reg(RBR))
            return len(got) >= len(data)

        wait_for(received_all, interval=0, message=lambda: f"received only {bytes(got)!r}")
    assert bytes(got) == data
    assert not uart.reg(LSR) & LSR_DR
    assert not uart.line()


def test_uart_transmitted_bytes_land_in_the_output_file(uart: Uart):
    """Bytes written to THR are appended to the output file, in order."""
    before = uart.output_bytes()
    data = f"transmitted by {uart.name}\n".encode()
    for byte in data:
        uart.set(THR, byte)
    wait_for(lambda: uart.output_bytes() == before + data, message=f"{uart.output_bytes()!r}")


def test_uart_transmitted_bytes_reach_the_console_socket(uart: Uart):
    """A connected console receives what the UART transmits."""
    with uart.console() as console:
        # The device learns of the connection asynchronously: transmit until it arrives.
        received = bytearray()
        for _ in range(200):
            uart.set(THR, ord("."))
            console.settimeout(0.05)
            try:
                received += console.recv(4096)
                break
            except TimeoutError:
                continue
        assert received.startswith(b".")
        console.settimeout(20)
        for byte in b"console":
            uart.set(THR, byte)
        while not received.endswith(b"console"):
            chunk = console.recv(4096)
            assert chunk, "the console connection closed"
            received += chunk
    assert received.lstrip(b".") == b"console"


def test_uart_loopback_returns_transmitted_bytes_instead_of_sending_them(uart: Uart):
    """In loopback (MCR bit 4) a byte written to THR comes back in RBR and is not output."""
    before = uart.output_bytes()
    uart.set(MCR, LOOPBACK)
    got = bytearray()
    for byte in b"loop":
        uart.set(THR, byte)
        assert uart.reg(LSR) & LSR_DR
        got.append(uart.reg(RBR))
    assert bytes(got) == b"loop"
    assert uart.output_bytes() == before


def test_uart_loopback_raises_the_receive_interrupt(uart: Uart):
    """A looped-back byte raises the line like a received one; reading it lowers it."""
    uart.set(MCR, LOOPBACK)
    uart.set(IER, IER_RDA)
    uart.set(THR, 0x42)
    assert uart.line()
    assert uart.reg(RBR) == 0x42
    assert not uart.line()
