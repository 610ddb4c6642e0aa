"""A running CPU follows its address space's flat view, as QEMU's CPUs follow theirs: RAM that a
client maps while the guest runs is RAM the guest reads, a region of higher priority moved over
it hides it, and a device region that takes its place answers the guest's next read. Both for a
CPU in its own process (`mmiobus cpu run`) and one in the server (`serve --cpu`)."""

from __future__ import annotations

import pytest
from mmiobus.client import Bus
from mmiobus.v1 import devices_pb2
from support.guest import RiscvGuest
from support.raw_device import RawDevice
from support.rvasm import Program, beq, bne, jal, la, ld, li, ref, sd, sw
from support.wait import wait_for

BASE = 0x80000000
RESULT, GO, STOP = 0x80100000, 0x80100008, 0x80100010  # in the machine's RAM
WATCH = 0x90000000  # nothing is mapped here when the guest starts
ELSEWHERE = 0x90010000
TEST = 0x100000  # the test finisher: power off
MTIMER, CLASH = 0x2004000, 0x2008000  # the CPU serves the ACLINT timer; CLASH is in it
FOLLOWED = "the CPU follows the bus's new memory map"


def _guest() -> Program:
    """Say it runs (1 at RESULT) and spin until GO is set; then copy the 8 bytes at WATCH to
    RESULT until STOP is set, and power off."""
    p = Program(BASE)
    p.labels.update(result=RESULT, go=GO, stop=STOP, watch=WATCH)
    p.emit(la("t0", "result"), li("t1", 1), sd("t1", "t0"), la("t0", "go"))
    p.label("wait")
    p.emit(ld("t1", "t0"), ref(beq, "wait", "t1", "zero"))
    p.label("copy")
    p.emit(la("t0", "stop"), ld("t1", "t0"), ref(bne, "done", "t1", "zero"))
    p.emit(la("t2", "watch"), ld("t3", "t2"), la("t2", "result"), sd("t3", "t2"))
    p.emit(ref(jal, "copy", "zero"))
    p.label("done")
    p.emit(li("t0", TEST), li("t1", 0x5555), sw("t1", "t0"))
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))
    return p


@pytest.fixture(params=["process", "server"])
def guest(request, tmp_path):
    guest = RiscvGuest(tmp_path, _guest(), request.param)
    yield guest
    guest.stop()


def test_the_guest_sees_ram_and_devices_mapped_moved_and_hidden_while_it_runs(guest):
    with Bus(guest.server.tcp) as bus, RawDevice(guest.server.tcp) as device:
        device.hello("uart0")
        assert device.claim("uart0").code == 0
        result = lambda: bus.read_u64(RESULT)  # noqa: E731
        wait_for(lambda: result() == 1, 30, message=guest.log)  # it runs, on its first map

        # RAM appears where nothing was: the guest reads what a client wrote there.
        with bus.transaction() as t:
            t.create_region("watch.a", "ram", "4K")
            t.add_subregion("system", "watch.a", WATCH)
        bus.write_u64(WATCH, 0xAAAA)
        # Else the guest could read WATCH before its CPU maps it: the CPU takes a new map
        # between slices of instructions, after the client's transaction returned.
        wait_for(lambda: FOLLOWED in guest.log(), 30, message=guest.log)
        bus.write_u64(GO, 1)
        wait_for(lambda: result() == 0xAAAA, 30, message=guest.log)

        # RAM of higher priority, mapped elsewhere first, moves over it.
        with bus.transaction() as t:
            t.create_region("watch.b", "ram", "4K")
            t.add_subregion("system", "watch.b", ELSEWHERE, priority=1)
        bus.write_u64(ELSEWHERE, 0xBBBB)
        with bus.transaction() as t:
            t.set_address("watch.b", WATCH)
        wait_for(lambda: result() == 0xBBBB, 30, message=guest.log)
        assert bus.read_u64(WATCH) == 0xBBBB  # what the bus shows, the guest reads

        # A device region takes the place of both: the guest's read reaches the device.
        assert device.register(id="watch.dev", size=0x1000, addr=WATCH).code == 0
        with bus.transaction() as t:
            t.set_enabled("watch.a", False)
            t.set_enabled("watch.b", False)
        (low,), _ = device.accesses(1)
        assert (low.write, low.offset, low.size) == (False, 0, 4)
        bus.write_u64(STOP, 1)
        device.answer(devices_pb2.AccessReply(id=low.id, value=0xCCCC))
        (high,), _ = device.accesses(1)  # an 8-byte load is two 4-byte reads
        assert (high.write, high.offset) == (False, 4)
        device.answer(devices_pb2.AccessReply(id=high.id, value=0))
        assert "guest_exit" in guest.summary()
        assert result() == 0xCCCC


def test_a_map_the_cpu_cannot_take_is_named_and_the_guest_carries_on(guest):
    """A region over part of a page of the CPU's own timer: the CPU serves that page itself
    and cannot put a bus window in it, so it keeps the map it had and says why."""
    with Bus(guest.server.tcp) as bus, RawDevice(guest.server.tcp) as device:
        device.hello("uart0")
        assert device.claim("uart0").code == 0
        wait_for(lambda: bus.read_u64(RESULT) == 1, 30, message=guest.log)
        with bus.transaction() as t:
            t.create_region("clash", "ram", 0x100)
            t.add_subregion("system", "clash", CLASH, priority=1)
        wait_for(lambda: "cannot follow the new memory map" in guest.log(), 30,
                 message=guest.log)  # fmt: skip
        assert f"shares a 4 KiB page with RAM or a board device at {MTIMER:#x}" in guest.log()
        bus.write_u64(CLASH, 0xDD)  # the bus serves it
        assert bus.read_u64(CLASH) == 0xDD
        bus.write_u64(STOP, 1)
        bus.write_u64(GO, 1)
        assert "guest_exit" in guest.summary()
