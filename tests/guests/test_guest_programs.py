"""Guest programs of the tests' own, run by `mmiobus cpu run` on the bus: interrupts that come
from a device process reach the guest through the interrupt controller, and RAM is shared —
what a client or a DMA device writes is what the guest reads, and what the guest stores is what
clients read."""

from __future__ import annotations

import os
import struct

import pytest
import yaml
from mmiobus.client import Bus
from mmiobus.machine.builtin import builtin_text
from support import rvasm
from support.devices import start_device
from support.firmware import start_cpu
from support.rvasm import (
    MRET,
    WFI,
    Program,
    add,
    addi,
    beq,
    bltu,
    csrrs,
    csrw,
    jal,
    la,
    ld,
    li,
    lw,
    ref,
    sd,
    sw,
)
from support.servers import start_server
from support.wait import wait_for

BASE = 0x80000000
RESULT = 0x80100000  # where the guests leave what they found
SRC, DST = 0x80200000, 0x80300000
PLIC, TEST = 0x0C000000, 0x100000
TIMER, DMA = 0x10001000, 0x10002000
TIMER_SOURCE, DMA_SOURCE = 11, 12


def andi(rd: str, rs: str, imm: int) -> int:
    return rvasm._i(0x13, rvasm._r(rd), 7, rvasm._r(rs), imm)


def _machine(tmp_path) -> str:
    """riscv-virt with a timer and a DMA engine on the bus, their lines wired to the PLIC, and
    the UART in the server (these guests print nothing)."""
    spec = yaml.safe_load(builtin_text("riscv-virt"))
    system = spec["regions"][0]
    for region in system["subregions"]:
        if region["id"] == "uart0":
            region["device"] = {"class": "mmiobus.devices.models.uart16550:Uart16550",
                                "args": {"output": "none", "input": "none"}}  # fmt: skip
    four = {"valid": {"min": 4, "max": 4}, "impl": {"min": 4, "max": 4}}
    system["subregions"] += [
        {"name": "timer0", "kind": "mmio", "addr": TIMER, "size": 0x10, "device": "timer0", **four},
        {"name": "dma0", "kind": "mmio", "addr": DMA, "size": 0x20, "device": "dma0", **four},
    ]
    spec["cpus"][0]["interrupts"].update({"timer0.irq": TIMER_SOURCE, "dma0.irq": DMA_SOURCE})
    path = tmp_path / "machine.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _program() -> Program:
    """A program at the firmware's address; labels for the RAM the guests use (addresses above
    2 GiB: `li` would sign-extend them, `la` reaches them pc-relative)."""
    p = Program(BASE)
    p.labels.update(result=RESULT, dst=DST)
    return p


def _power_off(p: Program) -> None:
    p.emit(li("t0", TEST), li("t1", 0x5555), sw("t1", "t0"))
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))


class Guest:
    """A machine with a timer and a DMA engine in device processes, and a guest program on its
    CPU — in a `mmiobus cpu run` process, or in the server (`serve --cpu`)."""

    def __init__(self, tmp_path, program: Program, where: str) -> None:
        image = tmp_path / "guest.bin"
        image.write_bytes(program.to_bytes())
        where, _, polling = where.partition(", ")
        self.where = where
        # The CPU waits for answers asleep ("--poll-max-us 0"), or polls first (the default).
        self.cpu_options = ["--poll-max-us", "0"] if polling == "no polling" else []
        args = ["--config", _machine(tmp_path)]
        if where == "server":
            args += ["--cpu", "cpu0", "--firmware", str(image), *self.cpu_options]
        self.server = start_server(*args)
        self.image = image
        self.devices: list = []
        self.cpu = None

    def run(self) -> str:
        """Start the CPU (it starts once the devices are attached) and the devices; the run's
        summary once the guest powers off."""
        if self.where == "process":
            self.cpu = start_cpu(self.server.tcp, "--firmware", str(self.image), "--timeout", "60",
                                 *self.cpu_options)  # fmt: skip
        self.devices = [
            start_device(f"mmiobus.devices.models.{target}", self.server.tcp, "--claim", name)
            for target, name in (("timer:Timer", "timer0"), ("dma:DmaEngine", "dma0"))
        ]
        if self.cpu is not None:
            status, stdout, log = self.cpu.wait()
            assert status == 0, log
            return stdout
        wait_for(lambda: "CPU stopped" in self.server.log(), 60, message=self.server.log)
        return self.server.log()

    def stop(self) -> None:
        for device in self.devices:
            device.stop()
        assert self.server.stop() == 0, self.server.log()


@pytest.fixture(params=["process", "server", "process, no polling", "server, no polling"])
def where(request) -> str:
    """Where the CPU runs: its own process (`mmiobus cpu run`), or the server; and whether it
    polls for answers (the default) or waits asleep."""
    return request.param


def test_guest_counts_timer_interrupts_that_come_from_a_device_process(tmp_path, where):
    n = 5
    p = _program()
    p.emit(la("t0", "handler"), csrw("mtvec", "t0"), li("s0", 0), li("s1", n))
    p.emit(li("t0", PLIC + 4 * TIMER_SOURCE), li("t1", 1), sw("t1", "t0"))  # priority 1
    p.emit(li("t0", PLIC + 0x2000), li("t1", 1 << TIMER_SOURCE), sw("t1", "t0"))  # enable, M
    p.emit(li("t0", TIMER), li("t1", 500), sw("t1", "t0", 8))  # period: 500 us
    p.emit(li("t1", 0b111), sw("t1", "t0", 0))  # enable, periodic, interrupt
    p.emit(
        li("t0", 1 << 11), csrrs("zero", "mie", "t0"), li("t0", 8), csrrs("zero", "mstatus", "t0")
    )
    p.label("wait")
    p.emit(WFI, ref(bltu, "wait", "s0", "s1"))
    p.emit(la("t0", "result"), sd("s0", "t0"))
    _power_off(p)
    p.label("handler")  # claim; count an expiry and clear it (w1c); complete
    p.emit(li("t0", PLIC + 0x200004), lw("t1", "t0"))
    p.emit(li("t2", TIMER), lw("t3", "t2", 4), andi("t3", "t3", 1), ref(beq, "done", "t3", "zero"))
    p.emit(addi("s0", "s0", 1), li("t3", 1), sw("t3", "t2", 4), lw("t3", "t2", 4))
    p.emit(ref(bltu, "done", "s0", "s1"))  # the last one: stop the timer and its interrupt
    p.emit(sw("zero", "t2", 0), li("t3", 1 << 11), rvasm.csrrc("zero", "mie", "t3"))
    p.label("done")
    p.emit(sw("t1", "t0"), MRET)
    guest = Guest(tmp_path, p, where)
    try:
        assert "guest_exit" in guest.run()
        with Bus(guest.server.tcp) as client:
            assert int.from_bytes(client.read(RESULT, 8), "little") == n  # the guest's store
            count = int.from_bytes(client.read(TIMER + 0xC, 4), "little")
        assert count >= n  # the timer device expired at least as often as the guest counted
    finally:
        guest.stop()


def test_guest_reads_what_a_dma_device_copied_from_what_a_client_wrote(tmp_path, where):
    pattern = os.urandom(64)
    p = _program()
    p.emit(li("t0", DMA), li("t1", SRC), sw("t1", "t0", 0x00), sw("zero", "t0", 0x04))
    p.emit(li("t1", DST), sw("t1", "t0", 0x08), sw("zero", "t0", 0x0C))
    p.emit(li("t1", len(pattern)), sw("t1", "t0", 0x10), li("t1", 1), sw("t1", "t0", 0x14))
    p.label("poll")  # until DONE (status bit 1)
    p.emit(lw("t1", "t0", 0x18), andi("t1", "t1", 2), ref(beq, "poll", "t1", "zero"))
    p.emit(la("t2", "dst"), li("t3", len(pattern) // 8), li("s0", 0))
    p.label("sum")
    p.emit(ld("t1", "t2"), add("s0", "s0", "t1"), addi("t2", "t2", 8), addi("t3", "t3", -1))
    p.emit(ref(rvasm.bne, "sum", "t3", "zero"))
    p.emit(la("t0", "result"), sd("s0", "t0"))
    _power_off(p)
    guest = Guest(tmp_path, p, where)
    try:
        with Bus(guest.server.tcp) as client:
            client.write(SRC, pattern)  # before the CPU starts: the guest's RAM is the bus's
        guest.run()
        expected = sum(struct.unpack("<8Q", pattern)) & ((1 << 64) - 1)
        with Bus(guest.server.tcp) as client:
            assert client.read(DST, len(pattern)) == pattern
            assert int.from_bytes(client.read(RESULT, 8), "little") == expected
    finally:
        guest.stop()
