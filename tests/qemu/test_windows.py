"""Windows of a peer's address space (``mmiobus.peers.windows``), QEMU's memory map as `info
mtree -f` prints it, and where QEMU's serial ports go: the checks made before a peer attaches."""

from __future__ import annotations

import pytest
from mmiobus.peers.windows import (
    WindowError,
    check_inside,
    merge,
    parse_claim,
    parse_registration,
    resolve,
)
from mmiobus.qemu.launch import SerialSpecError, serial_options
from mmiobus.qemu.machine_view import cpu_flat_view

MTREE_F = """\
FlatView #0
 AS "I/O", root: io
 Root memory region: io
  0000000000000000-000000000000ffff (prio 0, i/o): io

FlatView #1
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000001000-000000000000ffff (prio 0, rom): riscv_virt_board.mrom
  0000000010000000-0000000010000007 (prio 0, i/o): serial
  0000000010000008-00000000100000ff (prio 0, i/o): serial @0000000000000008
  0000000080000000-0000000087ffffff (prio 0, ram): riscv_virt_board.ram
"""
REGIONS = {"uart0": (0x10000000, 0x8), "rtc": (0x101000, 0x24)}


def test_a_claim_is_served_from_its_own_bus_address_unless_told():
    (plain, moved) = resolve([parse_claim("uart0"), parse_claim("rtc=0x30000")], REGIONS)
    assert (plain.bus_addr, plain.size, plain.target) == (0x10000000, 8, 0x10000000)
    assert (moved.bus_addr, moved.target) == (0x101000, 0x30000)


def test_a_registration_names_its_bus_address_size_and_target():
    w = parse_registration("0x50000000:4K=0x9000000")
    assert (w.region, w.bus_addr, w.size, w.target) == (None, 0x50000000, 0x1000, 0x9000000)
    assert parse_registration("0x50000000:4K", default_target=0).target == 0
    with pytest.raises(WindowError, match="write BUS_ADDR:SIZE=PEER_ADDR"):
        parse_registration("0x50000000:4K")


@pytest.mark.parametrize(
    ("windows", "says"),
    [
        (["uart0", "uart0"], "region 'uart0' is claimed twice"),
        (["nosuch"], "the bus has no region 'nosuch' to claim"),
        (["uart0", "0x0:8=0x10000007"], "overlap in QEMU"),
    ],
)
def test_windows_that_cannot_be_served_are_refused(windows, says):
    parsed = [parse_registration(w) if ":" in w else parse_claim(w) for w in windows]
    with pytest.raises(WindowError, match=says):
        resolve(parsed, REGIONS, "QEMU")


def test_the_cpus_flat_view_is_read_merged_and_holes_are_named():
    covered = cpu_flat_view(MTREE_F)
    assert covered == [(0x1000, 0xFFFF), (0x10000000, 0x100000FF), (0x80000000, 0x87FFFFFF)]
    inside = resolve([parse_registration("0x0:0x100=0x10000000")], {})[0]
    check_inside(inside, covered, "QEMU")
    across = resolve([parse_registration("0x0:0x200=0x10000000")], {})[0]
    with pytest.raises(WindowError, match="nothing is mapped at 0x10000100-0x100001ff"):
        check_inside(across, covered, "QEMU")
    assert merge([(5, 9), (0, 4), (20, 30), (25, 26)]) == [(0, 9), (20, 30)]


def test_serial_ports_go_where_the_options_say():
    assert serial_options(["stdout", "tcp:127.0.0.1:4444", "none"]) == [
        "-chardev", "file,id=serial0,path=/dev/stdout,append=on", "-serial", "chardev:serial0",
        "-chardev", "socket,id=serial1,host=127.0.0.1,port=4444,server=on,wait=off",
        "-serial", "chardev:serial1",
        "-chardev", "null,id=serial2", "-serial", "chardev:serial2",
    ]  # fmt: skip
    assert serial_options(["file:/tmp/a,b"])[1] == "file,id=serial0,path=/tmp/a,,b"
    with pytest.raises(SerialSpecError):
        serial_options(["pty"])
