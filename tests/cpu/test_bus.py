"""The Bus seam: local devices, function-backed (remote-like) buses, posted writes."""

from __future__ import annotations

import threading
import time

import pytest
from mmiobus.cpu import BusFault, ExitReason
from mmiobus.cpu.board import Board, build
from mmiobus.cpu.bus import Bus, CallableBus, DeviceBus, PostedWriteBus
from mmiobus.cpu.layout import layout
from mmiobus.devices.models.uart16550 import Uart16550
from mmiobus.machine import Machine
from mmiobus.server.services.convert import cpu_to_pb, topology_to_pb
from mmiobus.server.sharing import SharedRam


class Scratch:
    """Registers that keep what is written."""

    def __init__(self) -> None:
        self.regs: dict[int, int] = {}

    def read(self, offset: int, size: int) -> int:
        return self.regs.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        self.regs[offset] = value


def test_device_bus_decodes_windows_and_faults_elsewhere():
    bus = DeviceBus()
    dev = bus.attach(0x1000, 0x100, Scratch(), "scratch")
    bus.write(0x1010, 4, 0xABCD)
    assert dev.regs == {0x10: 0xABCD} and bus.read(0x1010, 4) == 0xABCD
    with pytest.raises(BusFault) as info:
        bus.read(0x2000, 4)
    assert info.value.addr == 0x2000 and not info.value.is_write
    with pytest.raises(ValueError):
        bus.attach(0x10F0, 0x100, Scratch())


class SlowRemote:
    """Stands in for a remote bus: each call takes *latency* seconds and is logged."""

    def __init__(self, inner: DeviceBus, latency: float) -> None:
        self.inner, self.latency = inner, latency
        self.log: list[tuple[object, ...]] = []
        self.lock = threading.Lock()

    def read(self, addr: int, size: int) -> int:
        time.sleep(self.latency)
        with self.lock:
            self.log.append(("r", addr))
        return self.inner.read(addr, size)

    def write(self, addr: int, size: int, value: int) -> None:
        time.sleep(self.latency)
        with self.lock:
            self.log.append(("w", addr, value))
        self.inner.write(addr, size, value)


def test_posted_writes_are_ordered_before_the_next_read():
    local = DeviceBus()
    local.attach(0, 0x100, Scratch(), "s")
    remote = SlowRemote(local, 0.002)
    bus = PostedWriteBus(CallableBus(remote.read, remote.write))
    t0 = time.monotonic()
    for i in range(10):
        bus.write(i * 4, 4, i)
    posted = time.monotonic() - t0
    assert posted < 0.01  # the writes did not wait for their answers
    assert bus.read(9 * 4, 4) == 9  # the read waited for all of them
    assert [e[0] for e in remote.log] == ["w"] * 10 + ["r"]
    bus.close()


def test_posted_write_fault_is_reported_by_the_next_read():
    bus = PostedWriteBus(DeviceBus())
    bus.write(0x40, 4, 1)  # nothing there: faults on the worker
    with pytest.raises(BusFault) as info:
        bus.read(0x80, 4)
    assert info.value.posted and info.value.is_write and info.value.addr == 0x40
    bus.close()


def test_posted_write_fault_is_reported_by_flush():
    bus = PostedWriteBus(DeviceBus())
    bus.write(0x40, 4, 1)
    with pytest.raises(BusFault) as info:
        bus.flush()
    assert info.value.posted and info.value.is_write and info.value.addr == 0x40
    bus.close()


def riscv_virt_on(bus: Bus) -> Board:
    """riscv-virt's board with every bus window going to ``bus`` (``standalone`` does the
    same with a local bus holding the console)."""
    machine = Machine.builtin("riscv-virt")
    cpu = cpu_to_pb(machine, machine.cpus["cpu0"])
    lay = layout(cpu, topology_to_pb(machine, {}, flat_views=True))
    sharing = SharedRam()
    backings = {r: sharing.share(machine.region(r), r).mapping for r in lay.regions_to_share}
    board = build(lay, bus, backings)
    board.load(cpu.fdt_addr, cpu.fdt, "device tree")
    return board


def test_opensbi_banner_through_a_remote_like_pipelined_bus(opensbi):
    """Every UART access crosses the seam as a (slow) function call; writes are posted."""
    devices = DeviceBus()
    uart = devices.attach(0x10000000, 0x8, Uart16550(output="none", input="none"), "uart")
    remote = SlowRemote(devices, 0.0001)
    bus = PostedWriteBus(CallableBus(remote.read, remote.write))
    board = riscv_virt_on(bus)
    board.load(0x80000000, opensbi, "firmware")
    try:
        result = board.engine.run(until_pc=0x80200000, timeout_seconds=60)
    finally:
        bus.close()
    assert result.reason == ExitReason.REACHED
    text = uart.transmitted.decode()
    assert "OpenSBI v1.1" in text and "Domain0 Next Mode         : S-mode" in text
    assert result.accesses["bus"] == len(remote.log)
    reads = sum(1 for e in remote.log if e[0] == "r")
    writes = len(remote.log) - reads
    assert 0 <= writes - len(uart.transmitted) < 16 and reads > 1000  # + init (LCR, divisor...)
