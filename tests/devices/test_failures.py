"""Device failures end to end: nothing hangs, nothing is lost, nobody else is disturbed.

Silent, killed, leaving, returning and misbehaving devices against real `mmiobus serve`
processes. Devices that must die are real `mmiobus device run` processes; devices that must
stay silent or send garbage are raw ``Devices.Attach`` streams opened from the test.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
import pytest
from mmiobus.memory.access import MemTxResult
from mmiobus.v1 import bus_pb2, bus_pb2_grpc, devices_pb2
from support.devices import start_device
from support.models import SCRATCH, target
from support.models.recorder import Recorder, bytes_from_records, read_records
from support.ports import free_port
from support.raw_device import BusStub, RawDevice
from support.servers import ServerFactory, ServerProcess
from support.wait import wait_for

RECORDER = target(Recorder)
RAM = 0x0
SILENT = 0x10000000
STALL = {"stall_a": 0x10001000, "stall_b": 0x10001100}
BYSTANDER = 0x10002000
ABSENT = {"error": 0x10003000, "unassigned": 0x10004000, "ram": 0x10005000}
NODEV = 0x10006000  # an mmio region no device ever serves
SLOW = 0x10007000
RECLAIM = 0x10008000
CLAIMABLE = 0x10009000  # an mmio region with no `device:`, claimed by whoever asks
REGISTERED = 0x20000000  # raw devices register their regions from here, one page each
EPHEMERAL = 0x30000000
HOLE = 0x40000000  # never mapped
LONG_DEADLINE_S = 30
DEFAULT_DEADLINE_MS = 400  # the server's --device-deadline

MACHINE = """
endianness: little
address_spaces:
  - {name: memory, root: system}
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, addr: 0x0, size: 1 MiB}
      - {name: silent, kind: mmio, addr: 0x10000000, size: 0x100, device: mute, deadline: 300ms}
      - {name: stall_a, kind: mmio, addr: 0x10001000, size: 0x100, device: staller-a,
         deadline: 30s}
      - {name: stall_b, kind: mmio, addr: 0x10001100, size: 0x100, device: staller-b,
         deadline: 30s}
      - {name: scratch, kind: mmio, addr: 0x10002000, size: 0x100, device: bystander}
      - {name: absent_error, kind: mmio, addr: 0x10003000, size: 0x100, device: abs-error,
         absent: error}
      - {name: absent_unassigned, kind: mmio, addr: 0x10004000, size: 0x100,
         device: abs-unassigned, absent: unassigned}
      - {name: absent_ram, kind: mmio, addr: 0x10005000, size: 0x100, device: abs-ram,
         absent: ram}
      - {name: nodev, kind: mmio, addr: 0x10006000, size: 0x100}
      - {name: slow, kind: mmio, addr: 0x10007000, size: 0x100, device: slowpoke, deadline: 30s}
      - {name: reclaim, kind: mmio, addr: 0x10008000, size: 0x100, device: phoenix}
      - {name: claimable, kind: mmio, addr: 0x10009000, size: 0x100}
"""


@pytest.fixture(scope="module")
def fail_server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(
        MACHINE, "--log-format", "json", "--device-deadline", str(DEFAULT_DEADLINE_MS)
    )


@pytest.fixture(scope="module")
def bus(fail_server):
    stub = BusStub(fail_server.tcp)
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def bystander(fail_server):
    """A healthy device process (scratch RAM) that must keep serving whatever others do."""
    dev = start_device(
        SCRATCH, fail_server.tcp, "--claim", "scratch", "--arg", "fill=0x3c", name="bystander"
    )
    yield dev
    dev.stop()


_pages = iter(range(0x100))


def raw_device(address: str, name: str, deadline_ms: int) -> tuple[RawDevice, int, object]:
    """A raw device that registered a fresh region; returns it, the region's address and
    the RegionReply."""
    dev = RawDevice(address)
    dev.hello(name)
    addr = REGISTERED + 0x1000 * next(_pages)
    reply = dev.register(id=f"{name}.regs", size=0x100, addr=addr, deadline_ms=deadline_ms)
    assert reply.code == 0, reply.message
    return dev, addr, reply


def assert_others_serve(bus: BusStub, tag: int) -> None:
    """RAM and the bystander device answer reads and writes correctly."""
    data = bytes([tag, tag ^ 0xFF, 0x5A, tag])
    assert bus.write(RAM + 0x100, data).result == MemTxResult.OK
    assert bus.read(RAM + 0x100, 4).data == data
    assert bus.write(BYSTANDER + 0x10, data).result == MemTxResult.OK
    reply = bus.read(BYSTANDER + 0x10, 4)
    assert (reply.data, reply.result) == (data, MemTxResult.OK)


def gone(bus: BusStub, name: str) -> None:
    wait_for(
        lambda: bus.device(name) is None, message=f"timed out waiting for device {name} to leave"
    )


# -- a device that never answers ---------------------------------------------------------------


def test_silent_device_access_fails_with_memtx_error_after_region_deadline(fail_server, bus):
    """An access to a device that never answers completes with MEMTX_ERROR once the region's
    `deadline` passes."""
    with RawDevice(fail_server.tcp) as dev:
        dev.hello("mute")
        reply = dev.claim("silent")
        assert reply.code == 0
        assert reply.region.deadline_ms == 300
        pending = bus.read_async(SILENT + 4, 4)
        (access,), _ = dev.accesses(1)
        assert access.offset == 4
        result = pending.result(timeout=LONG_DEADLINE_S)
    assert result.result == MemTxResult.ERROR
    assert result.data == bytes(4)


def test_region_without_deadline_uses_the_server_default(fail_server, bus):
    """A region registered without a deadline gets the server's --device-deadline, and a
    silent device's access to it fails with MEMTX_ERROR."""
    dev, addr, reply = raw_device(fail_server.tcp, "mute-default", deadline_ms=0)
    with dev:
        assert reply.region.deadline_ms == DEFAULT_DEADLINE_MS
        assert bus.read(addr, 4).result == MemTxResult.ERROR
        assert bus.device("mute-default").timeouts == 1


def test_silent_device_timeouts_are_counted_in_list_devices(fail_server, bus):
    """Each access that got no answer in time is counted in ListDevices."""
    dev, addr, _ = raw_device(fail_server.tcp, "mute-count", deadline_ms=300)
    with dev:
        results = [bus.read_async(addr + i, 1) for i in range(3)]
        results.append(bus.write_async(addr + 8, b"\x01"))
        assert [f.result().result for f in results] == [MemTxResult.ERROR] * 4
        info = bus.device("mute-count")
    assert info is not None
    assert (info.accesses, info.timeouts) == (len(results), len(results))


def test_silent_device_timeout_is_logged_with_device_and_region(fail_server, bus):
    """A timed-out access is logged with the device's name and the region's id."""
    dev, addr, _ = raw_device(fail_server.tcp, "mute-log", deadline_ms=300)
    with dev:
        assert bus.read(addr, 2).result == MemTxResult.ERROR

        def logged() -> list[dict]:
            events = []
            for line in fail_server.log().splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("device") == "mute-log" and "deadline_ms" in event:
                    events.append(event)
            return events

        wait_for(logged, message="timed out waiting for the timeout in the server log")
    (event,) = logged()
    assert event["region"] == "mute-log.regs"
    assert event["level"] == "warning"
    assert event["deadline_ms"] == 300


def test_late_answer_after_deadline_is_ignored_and_device_keeps_serving(fail_server, bus):
    """An answer that arrives after its access timed out does not end the device's stream;
    the next access is served normally."""
    dev, addr, _ = raw_device(fail_server.tcp, "tardy", deadline_ms=300)
    with dev:
        assert bus.read(addr, 1).result == MemTxResult.ERROR
        (late,), _ = dev.accesses(1)
        dev.answer(devices_pb2.AccessReply(id=late.id, value=0x01))
        pending = bus.read_async(addr + 1, 1)
        (access,), _ = dev.accesses(1)
        dev.answer(devices_pb2.AccessReply(id=access.id, value=0x77))
        assert pending.result().data == b"\x77"
        assert bus.device("tardy") is not None


# -- a device killed mid-access ----------------------------------------------------------------


def start_staller(server, region: str, log: Path):
    """A device process whose reads never answer (it records them first)."""
    name = f"staller-{region[-1]}"
    return start_device(
        RECORDER,
        server.tcp,
        "--claim",
        region,
        "--arg",
        f"log={log}",
        "--arg",
        "stall=true",
        name=name,
    )


def test_killed_device_fails_pending_access_before_the_deadline(fail_server, bus, tmp_path):
    """A device killed with SIGKILL while an access is pending: the access completes with
    MEMTX_ERROR at once, long before the region's 30 s deadline."""
    log = tmp_path / "accesses.jsonl"
    dev = start_staller(fail_server, "stall_a", log)
    try:
        pending = bus.read_async(STALL["stall_a"] + 8, 4)
        read_records(log, 1)  # the device has the access
        assert not pending.done()
        killed = time.monotonic()
        dev.kill()
        reply = pending.result(timeout=LONG_DEADLINE_S)
        waited = time.monotonic() - killed
    finally:
        dev.kill()
    assert reply.result == MemTxResult.ERROR
    assert waited < LONG_DEADLINE_S / 2


def test_killed_device_does_not_disturb_other_devices_or_ram(fail_server, bus, bystander, tmp_path):
    """While a stalled device holds an access, and after it is killed, RAM and another device
    keep serving correctly."""
    log = tmp_path / "accesses.jsonl"
    dev = start_staller(fail_server, "stall_b", log)
    try:
        pending = bus.read_async(STALL["stall_b"], 4)
        read_records(log, 1)
        assert_others_serve(bus, 0x21)
        dev.kill()
        assert pending.result(timeout=LONG_DEADLINE_S).result == MemTxResult.ERROR
        assert_others_serve(bus, 0x42)
    finally:
        dev.kill()


# -- regions while their device is absent ------------------------------------------------------


def start_absent_device(server, kind: str, fill: int):
    return start_device(
        SCRATCH,
        server.tcp,
        "--claim",
        f"absent_{kind}",
        "--arg",
        f"fill={fill}",
        name=f"abs-{kind}",
    )


def test_absent_error_region_fails_before_attach_and_after_leave(fail_server, bus):
    """`absent: error`: reads and writes fail with MEMTX_ERROR until the device attaches, are
    served while it is attached, and fail again once it leaves."""
    addr = ABSENT["error"]
    assert bus.read(addr, 4).result == MemTxResult.ERROR
    assert bus.write(addr, b"\x01").result == MemTxResult.ERROR
    dev = start_absent_device(fail_server, "error", 0x99)
    try:
        reply = bus.read(addr, 4)
        assert (reply.data, reply.result) == (bytes([0x99] * 4), MemTxResult.OK)
    finally:
        dev.stop()
    gone(bus, "abs-error")
    assert bus.read(addr, 4).result == MemTxResult.ERROR
    assert bus.write(addr, b"\x01").result == MemTxResult.ERROR


def test_absent_unassigned_region_answers_as_unassigned_before_attach_and_after_leave(
    fail_server, bus
):
    """`absent: unassigned`: without its device the region answers exactly like an mmio region
    that has no device, before the device attaches and after it leaves."""
    addr = ABSENT["unassigned"]

    def outcome(base: int) -> tuple:
        r, w = bus.read(base, 4), bus.write(base, b"\x01\x02")
        return r.data, r.result, w.result

    unassigned = outcome(NODEV)
    assert unassigned[1] != MemTxResult.OK
    assert outcome(addr) == unassigned
    dev = start_absent_device(fail_server, "unassigned", 0x77)
    try:
        reply = bus.read(addr, 4)
        assert (reply.data, reply.result) == (bytes([0x77] * 4), MemTxResult.OK)
    finally:
        dev.stop()
    gone(bus, "abs-unassigned")
    assert outcome(addr) == unassigned


def test_absent_ram_region_keeps_what_was_written_while_absent(fail_server, bus):
    """`absent: ram`: writes while the device is absent are read back, the device serves its
    own data while attached, and after it leaves the region reads what was written while it
    was absent."""
    addr = ABSENT["ram"]
    written = b"\xab\xcd\xef\x12"
    assert bus.write(addr, written).result == MemTxResult.OK
    assert bus.read(addr, 4).data == written
    dev = start_absent_device(fail_server, "ram", 0x55)
    try:
        assert bus.read(addr, 4).data == bytes([0x55] * 4)
        assert bus.write(addr, b"\x01\x02\x03\x04").result == MemTxResult.OK
        assert bus.read(addr, 4).data == b"\x01\x02\x03\x04"
    finally:
        dev.stop()
    gone(bus, "abs-ram")
    reply = bus.read(addr, 4)
    assert (reply.data, reply.result) == (written, MemTxResult.OK)


def test_region_without_declared_device_answers_alike_before_claim_and_after_leave(
    fail_server, bus
):
    """An mmio region whose description names no device answers the same before any device
    claims it and after the device that claimed it leaves."""

    def outcome() -> tuple:
        r, w = bus.read(CLAIMABLE, 4), bus.write(CLAIMABLE, b"\x01")
        return r.data, r.result, w.result

    before = outcome()
    with RawDevice(fail_server.tcp) as dev:
        dev.hello("passer-by")
        assert dev.claim("claimable").code == 0
        pending = bus.read_async(CLAIMABLE, 1)
        (access,), _ = dev.accesses(1)
        dev.answer(devices_pb2.AccessReply(id=access.id, value=0x5E))
        assert pending.result().data == b"\x5e"
    gone(bus, "passer-by")
    assert outcome() == before


def test_registered_region_vanishes_when_its_device_leaves(fail_server, bus):
    """A region a device registered is unmapped when the device dies; its addresses then
    answer like a hole."""
    hole = bus.read(HOLE, 4)
    dev = start_device(
        SCRATCH, fail_server.tcp, "--at", hex(EPHEMERAL), "--size", "0x100", name="ephemeral"
    )
    try:
        region = bus.region("ephemeral")
        assert region is not None and region.device == "ephemeral"
        assert bus.read(EPHEMERAL, 4).result == MemTxResult.OK
    finally:
        dev.kill()
    wait_for(
        lambda: bus.region("ephemeral") is None, message="timed out waiting for the region to go"
    )
    assert "ephemeral" not in bus.mtree()
    after = bus.read(EPHEMERAL, 4)
    assert (after.data, after.result) == (hole.data, hole.result)


# -- devices that come back --------------------------------------------------------------------


def test_device_reclaims_its_region_when_the_server_restarts(machine_server: ServerFactory):
    """A device process that outlives the server reconnects to the new server on the same
    address, claims its region again and serves it (with the state it kept)."""
    address = f"127.0.0.1:{free_port()}"
    srv = machine_server(MACHINE, "--listen", address, "--grace", "0.2")
    dev = None
    try:
        dev = start_device(
            SCRATCH, address, "--claim", "reclaim", "--arg", "fill=0x11", name="phoenix"
        )
        first = BusStub(address)
        assert first.write(RECLAIM, b"\x10\x20\x30").result == MemTxResult.OK
        first.close()
        assert srv.stop() == 0, srv.log()

        srv = machine_server(MACHINE, "--listen", address, "--grace", "0.2")
        dev.wait_serving()
        second = BusStub(address)
        info = second.device("phoenix")
        reply = second.read(RECLAIM, 4)
        second.close()
        assert info is not None and list(info.regions) == ["reclaim"]
        assert (reply.data, reply.result) == (b"\x10\x20\x30\x11", MemTxResult.OK)
    finally:
        if dev is not None:
            dev.stop()
        srv.stop()


def test_restarted_device_reclaims_its_region(fail_server, bus):
    """A device killed and started again under the same name claims its region again and
    serves it; in between the region behaves as declared (absent: error)."""
    dev = start_device(
        SCRATCH, fail_server.tcp, "--claim", "reclaim", "--arg", "fill=0x24", name="phoenix"
    )
    try:
        assert bus.read(RECLAIM, 2).data == b"\x24\x24"
    finally:
        dev.kill()
    gone(bus, "phoenix")
    assert bus.read(RECLAIM, 2).result == MemTxResult.ERROR
    dev = start_device(
        SCRATCH, fail_server.tcp, "--claim", "reclaim", "--arg", "fill=0x42", name="phoenix"
    )
    try:
        reply = bus.read(RECLAIM, 2)
        assert (reply.data, reply.result) == (b"\x42\x42", MemTxResult.OK)
    finally:
        dev.stop()


# -- malformed device messages -----------------------------------------------------------------


def _malformed(case: str, accesses: list[devices_pb2.Access]) -> tuple[object, str]:
    """The message a misbehaving device sends, and a word the bus's status should contain."""
    first = accesses[0]
    if case == "unknown-id":
        bad = max(a.id for a in accesses) + 1000
        reply = devices_pb2.AccessReply(id=bad)
        return devices_pb2.DeviceMessage(replies=devices_pb2.AccessReplies(replies=[reply])), str(
            bad
        )
    if case == "too-wide":
        reply = devices_pb2.AccessReply(id=first.id, value=1 << (8 * first.size))
        return devices_pb2.DeviceMessage(
            replies=devices_pb2.AccessReplies(replies=[reply])
        ), "wider"
    if case == "bad-result":
        reply = devices_pb2.AccessReply(id=first.id, result=8)
        return devices_pb2.DeviceMessage(
            replies=devices_pb2.AccessReplies(replies=[reply])
        ), "result"
    if case == "empty":
        return devices_pb2.DeviceMessage(), "empty"
    assert case == "hello-twice"
    return devices_pb2.DeviceMessage(hello=devices_pb2.Hello(name="again")), "hello"


CASES = ["unknown-id", "too-wide", "bad-result", "empty", "hello-twice"]


def misbehave(fail_server, bus, case: str, name: str):
    """A raw device with two reads pending sends the malformed message; returns the status
    its stream ended with, the pending reads and the word the status should name."""
    dev, addr, _ = raw_device(fail_server.tcp, name, deadline_ms=LONG_DEADLINE_S * 1000)
    with dev:
        pending = [bus.read_async(addr, 4), bus.read_async(addr + 4, 2)]
        accesses, _ = dev.accesses(2)
        message, word = _malformed(case, accesses)
        dev.send(message)
        ended = dev.ended()
    return ended, pending, word


@pytest.mark.parametrize("case", CASES)
def test_malformed_message_closes_stream_with_invalid_argument(fail_server, bus, case):
    """A device that sends a malformed message (reply to an unknown id, a value wider than
    the access, result bits above 7, an empty message, hello twice) gets its stream closed
    with INVALID_ARGUMENT naming the problem."""
    ended, pending, word = misbehave(fail_server, bus, case, f"bad-{case}")
    assert ended.code == grpc.StatusCode.INVALID_ARGUMENT
    assert word in ended.details
    for fut in pending:
        fut.cancel()


@pytest.mark.parametrize("case", CASES)
def test_malformed_message_fails_pending_accesses_at_once(fail_server, bus, case):
    """When a misbehaving device's stream is closed, every access pending on it (including
    the one its bad reply was for) completes with MEMTX_ERROR at once, not at the 30 s
    deadline."""
    _, pending, _ = misbehave(fail_server, bus, case, f"bad2-{case}")
    results = []
    try:
        for fut in pending:
            results.append(fut.result(timeout=5).result)
    finally:
        for fut in pending:
            fut.cancel()
    assert results == [MemTxResult.ERROR] * len(pending)


@pytest.mark.parametrize("case", CASES)
def test_malformed_device_does_not_disturb_bus_or_other_devices(fail_server, bus, bystander, case):
    """After a misbehaving device is thrown out, RAM and another device keep serving, and the
    region it registered is gone."""
    ended, pending, _ = misbehave(fail_server, bus, case, f"bad3-{case}")
    for fut in pending:
        fut.cancel()
    assert ended.code == grpc.StatusCode.INVALID_ARGUMENT
    assert_others_serve(bus, 0x30 + CASES.index(case))
    gone(bus, f"bad3-{case}")
    assert bus.region(f"bad3-{case}.regs") is None


# -- a client that leaves ----------------------------------------------------------------------


def test_client_leaving_mid_stream_to_slow_device_does_not_disturb_others(
    fail_server, bus, bystander, tmp_path
):
    """A client that cancels its RwStream while its accesses wait on a slow device disturbs
    neither another client queued behind it on that device, nor the device, RAM or other
    devices."""
    log = tmp_path / "accesses.jsonl"
    dev = start_device(
        RECORDER,
        fail_server.tcp,
        "--claim",
        "slow",
        "--arg",
        f"log={log}",
        "--arg",
        "delay=0.3",
        name="slowpoke",
    )
    channel = grpc.insecure_channel(fail_server.tcp)
    try:
        keep_open = threading.Event()

        def requests():
            yield bus_pb2.RwStreamRequest(
                accesses=[bus_pb2.RwRequest(id=i, addr=SLOW + 8 * i, read=8) for i in range(4)]
            )
            keep_open.wait(LONG_DEADLINE_S)

        call = bus_pb2_grpc.BusStub(channel).RwStream(requests(), timeout=LONG_DEADLINE_S)
        read_records(log, 1)  # the device is serving the leaving client's first access
        other = bus.read_async(SLOW + 0x40, 4)
        call.cancel()
        keep_open.set()
        with pytest.raises(grpc.RpcError) as info:
            list(call)
        assert info.value.code() == grpc.StatusCode.CANCELLED

        reply = other.result(timeout=LONG_DEADLINE_S)
        records = [r for r in read_records(log) if r["offset"] == 0x40]
        assert (reply.data, reply.result) == (
            bytes_from_records(records, 0x40, 4),
            MemTxResult.OK,
        )
        assert_others_serve(bus, 0x66)
        assert bus.device("slowpoke") is not None
        reply = bus.read(SLOW + 0x80, 2)
        records = [r for r in read_records(log) if r["offset"] == 0x80]
        assert (reply.data, reply.result) == (
            bytes_from_records(records, 0x80, 2),
            MemTxResult.OK,
        )
    finally:
        channel.close()
        dev.stop()
