"""The device protocol end to end: hello, claims, registrations, and how accesses reach devices.

Real `mmiobus serve` processes; devices are real `mmiobus device run` processes (a recording
model, ``support.models.recorder.Recorder``) or, where a test plays a device message by
message, a raw ``Devices.Attach`` stream opened from the test.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from mmiobus.memory.access import MemTxResult
from mmiobus.v1 import bus_pb2, devices_pb2
from support.devices import start_device
from support.models import target
from support.models.recorder import Recorder, bytes_from_records, read_records
from support.raw_device import BusStub, RawDevice, refusal
from support.servers import ServerFactory, ServerProcess

RECORDER = target(Recorder)
RAM = 0x0
REC = 0x10000000  # rec (device rec): any size 1..8, little-endian
REC2 = 0x10001000  # rec2 (device rec)
SPLIT = {  # region -> address, all served by the device `split`
    "bytes_le": 0x10002000,
    "bytes_be": 0x10003000,
    "halves_be": 0x10004000,
    "words_le": 0x10005000,
    "words_be": 0x10006000,
}
POSTED = 0x1000A000
MANY = 0x1000B000
SCRATCH_AT = 0x20000000  # where a device process registers a region
RAW_AT = 0x21000000  # where a raw device registers a region
HOLE = 0x30000000  # never mapped

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
      - {name: rec, kind: mmio, addr: 0x10000000, size: 0x1000, device: rec,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}, endianness: little}
      - {name: rec2, kind: mmio, addr: 0x10001000, size: 0x100, device: rec,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}, endianness: big}
      - {name: bytes_le, kind: mmio, addr: 0x10002000, size: 0x100, device: split,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 1}, endianness: little}
      - {name: bytes_be, kind: mmio, addr: 0x10003000, size: 0x100, device: split,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 1}, endianness: big}
      - {name: halves_be, kind: mmio, addr: 0x10004000, size: 0x100, device: split,
         valid: {min: 1, max: 8}, impl: {min: 2, max: 2}, endianness: big}
      - {name: words_le, kind: mmio, addr: 0x10005000, size: 0x100, device: split,
         valid: {min: 1, max: 4}, impl: {min: 4, max: 4}, endianness: little}
      - {name: words_be, kind: mmio, addr: 0x10006000, size: 0x100, device: split,
         valid: {min: 1, max: 4}, impl: {min: 4, max: 4}, endianness: big}
      - {name: alpha_only, kind: mmio, addr: 0x10007000, size: 0x100, device: alpha}
      - {name: open, kind: mmio, addr: 0x10008000, size: 0x100}
      - {name: open2, kind: mmio, addr: 0x10009000, size: 0x100}
      - {name: posted, kind: mmio, addr: 0x1000a000, size: 0x100, posted_writes: true,
         deadline: 30s, valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}
      - {name: many, kind: mmio, addr: 0x1000b000, size: 0x1000, deadline: 30s,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}
      - {name: ordered, kind: mmio, addr: 0x1000c000, size: 0x1000, deadline: 30s,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}
      - {name: toggled, kind: mmio, addr: 0x1000d000, size: 0x100, device: toggler,
         absent: error}
      - {name: dma_target, kind: mmio, addr: 0x1000e000, size: 0x100, deadline: 30s,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}
"""
ORDERED = 0x1000C000
TOGGLED = 0x1000D000
DMA_TARGET = 0x1000E000
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def proto_server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE)


@pytest.fixture(scope="module")
def token_server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE, "--device-token", TOKEN)


@pytest.fixture(scope="module")
def bus(proto_server):
    stub = BusStub(proto_server.tcp)
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def rec(proto_server, tmp_path_factory):
    """A recording device process serving `rec` and `rec2`; yields its log path."""
    log = tmp_path_factory.mktemp("rec") / "accesses.jsonl"
    dev = start_device(
        RECORDER,
        proto_server.tcp,
        "--claim",
        "rec",
        "--claim",
        "rec2",
        "--arg",
        f"log={log}",
        name="rec",
    )
    yield log
    dev.stop()


@pytest.fixture(scope="module")
def split(proto_server, tmp_path_factory):
    """A recording device process serving the regions with narrow or wide impl sizes."""
    log = tmp_path_factory.mktemp("split") / "accesses.jsonl"
    claims = [arg for region in SPLIT for arg in ("--claim", region)]
    dev = start_device(RECORDER, proto_server.tcp, *claims, "--arg", f"log={log}", name="split")
    yield log
    dev.stop()


def hello(name: str, **fields) -> devices_pb2.DeviceMessage:
    fields.setdefault("min_protocol", 1)
    fields.setdefault("max_protocol", 1)
    return devices_pb2.DeviceMessage(hello=devices_pb2.Hello(name=name, **fields))


def recorded_during(log: Path, action):
    """Run ``action()``; returns its result and the accesses the recorder logged meanwhile."""
    before = len(read_records(log))
    out = action()
    return out, read_records(log)[before:]


# -- hello -------------------------------------------------------------------------------------


def test_hello_gets_a_welcome_with_a_version_both_speak(proto_server, bus):
    """A device speaking a range of versions is welcomed with one inside its range, and told
    the machine's byte order."""
    with RawDevice(proto_server.tcp) as dev:
        welcome = dev.hello("greeter", min_protocol=1, max_protocol=9)
    assert 1 <= welcome.protocol_version <= 9
    assert welcome.bus_version
    assert welcome.endianness == bus.topology().endianness


def test_protocol_mismatch_is_failed_precondition_naming_both_ranges(proto_server):
    """A device speaking only versions 2..3 is refused with FAILED_PRECONDITION, and the
    message says which versions each side speaks."""
    with RawDevice(proto_server.tcp) as dev:
        welcome = dev.hello("probe", min_protocol=1, max_protocol=1)
    ended = refusal(proto_server.tcp, hello("futuristic", min_protocol=2, max_protocol=3))
    assert ended.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "2..3" in ended.details
    assert "protocol" in ended.details
    assert str(welcome.protocol_version) in ended.details


@pytest.mark.parametrize("token", ["", "wrong-token"], ids=["missing", "wrong"])
def test_token_required_when_server_has_device_token(token_server, token):
    """With --device-token, a device with a missing or wrong token is UNAUTHENTICATED."""
    ended = refusal(token_server.tcp, hello("intruder", token=token))
    assert ended.code == grpc.StatusCode.UNAUTHENTICATED
    assert "token" in ended.details


def test_right_token_is_welcomed(token_server):
    """With --device-token, a device presenting the token is welcomed."""
    with RawDevice(token_server.tcp) as dev:
        welcome = dev.hello("insider", token=TOKEN)
    assert welcome.protocol_version


def test_device_process_with_token_serves_on_a_guarded_bus(token_server, tmp_path):
    """`mmiobus device run --token` attaches to a bus that requires it and serves."""
    log = tmp_path / "accesses.jsonl"
    dev = start_device(
        RECORDER,
        token_server.tcp,
        "--claim",
        "rec",
        "--token",
        TOKEN,
        "--arg",
        f"log={log}",
        name="rec",
    )
    try:
        stub = BusStub(token_server.tcp)
        reply = stub.read(REC, 4)
        stub.close()
        assert reply.result == MemTxResult.OK
        assert reply.data == bytes_from_records(read_records(log, 1), 0, 4)
    finally:
        dev.stop()


def test_device_process_with_wrong_token_exits_with_the_reason(token_server, tmp_path):
    """`mmiobus device run` with a wrong token does not retry forever: it exits non-zero and
    says why."""
    dev = start_device(
        RECORDER,
        token_server.tcp,
        "--claim",
        "rec",
        "--token",
        "not-it",
        "--arg",
        f"log={tmp_path / 'accesses.jsonl'}",
        name="rec",
        wait=False,
    )
    try:
        code = dev.proc.wait(10)
    finally:
        dev.kill()
    assert code != 0
    assert "token" in dev.log()


def test_second_device_with_same_name_is_already_exists(proto_server):
    """While a device is attached, another hello with its name is ALREADY_EXISTS."""
    with RawDevice(proto_server.tcp) as first:
        first.hello("twin")
        ended = refusal(proto_server.tcp, hello("twin"))
    assert ended.code == grpc.StatusCode.ALREADY_EXISTS
    assert "twin" in ended.details


@pytest.mark.parametrize(
    "name",
    [
        "",
        "has space",
        ".dot-first",
        "slash/name",
        "caf\u00e9",
        pytest.param(
            "newline-last\n",
        ),
    ],
)
def test_bad_device_name_is_invalid_argument(proto_server, name):
    """A device name outside letters, digits, '_', '.', '-' is INVALID_ARGUMENT."""
    ended = refusal(proto_server.tcp, hello(name))
    assert ended.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in ended.details


def test_requester_id_wider_than_16_bits_is_invalid_argument(proto_server):
    """A requester id that does not fit in 16 bits is INVALID_ARGUMENT naming it."""
    ended = refusal(proto_server.tcp, hello("wide-rid", requester_id=0x10000))
    assert ended.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "requester_id" in ended.details


def test_first_message_not_hello_is_invalid_argument(proto_server):
    """A stream that starts with anything but hello is INVALID_ARGUMENT."""
    claim = devices_pb2.DeviceMessage(
        region=devices_pb2.RegionRequest(request_id=1, claim=devices_pb2.ClaimRegion(region="open"))
    )
    ended = refusal(proto_server.tcp, claim)
    assert ended.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "hello" in ended.details


# -- claims ------------------------------------------------------------------------------------


def test_claimed_region_gets_accesses_with_their_offsets_and_sizes(rec, bus):
    """Reads and writes of 1, 2, 4 and 8 bytes reach the claiming device at their offset
    inside the region, with their size, and the client gets what the device answered."""
    for size, offset in [(1, 0x3), (2, 0x10), (4, 0x24), (8, 0x40)]:
        reply, records = recorded_during(rec, lambda o=offset, s=size: bus.read(REC + o, s))
        assert [(r["region"], r["op"], r["offset"], r["size"]) for r in records] == [
            ("rec", "read", offset, size)
        ]
        assert reply.result == MemTxResult.OK
        assert reply.data == bytes_from_records(records, offset, size)

        data = bytes(range(0xA0, 0xA0 + size))
        reply, records = recorded_during(rec, lambda o=offset, d=data: bus.write(REC + o, d))
        assert reply.result == MemTxResult.OK
        assert [(r["region"], r["op"], r["offset"], r["size"]) for r in records] == [
            ("rec", "write", offset, size)
        ]
        assert records[0]["value"] == int.from_bytes(data, "little")


def test_claim_of_region_declared_for_another_device_is_permission_denied(proto_server):
    """Claiming a region whose description names another device is PERMISSION_DENIED."""
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("beta")
        reply = dev.claim("alpha_only")
    assert reply.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "alpha_only" in reply.message
    assert "alpha" in reply.message.replace("alpha_only", "")


def test_second_claim_of_served_region_is_already_exists(proto_server, bus):
    """A region already served refuses a second claim with ALREADY_EXISTS; the first device
    keeps serving it."""
    with RawDevice(proto_server.tcp) as first, RawDevice(proto_server.tcp) as second:
        first.hello("first-owner")
        assert first.claim("open").code == 0
        second.hello("second-owner")
        reply = second.claim("open")
        assert reply.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
        assert "first-owner" in reply.message

        pending = bus.read_async(0x10008000, 1)
        (access,), _ = first.accesses(1)
        first.answer(devices_pb2.AccessReply(id=access.id, value=0x5C))
        assert pending.result().data == (0x5C).to_bytes(1, "little")


def test_claim_of_unknown_region_is_not_found(proto_server):
    """Claiming a region id the machine does not have is NOT_FOUND naming it."""
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("seeker")
        reply = dev.claim("no-such-region")
    assert reply.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no-such-region" in reply.message


def test_claim_of_ram_region_is_failed_precondition(proto_server):
    """Only mmio and romd regions have devices: claiming RAM is FAILED_PRECONDITION."""
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("ram-grabber")
        reply = dev.claim("ram")
    assert reply.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "ram" in reply.message


def test_device_cannot_unmap_a_region_it_does_not_own(proto_server, bus):
    """Unmapping another device's handle is refused; the owner keeps serving."""
    with RawDevice(proto_server.tcp) as owner, RawDevice(proto_server.tcp) as other:
        owner.hello("owner")
        handle = owner.claim("open2").handle
        other.hello("meddler")
        reply = other.unmap(handle)
        assert reply.code == grpc.StatusCode.NOT_FOUND.value[0]

        pending = bus.read_async(0x10009000, 1)
        (access,), _ = owner.accesses(1)
        assert access.handle == handle
        owner.answer(devices_pb2.AccessReply(id=access.id, value=0x3D))
        assert pending.result().data == (0x3D).to_bytes(1, "little")


def test_device_serves_several_regions(rec, bus):
    """One device process claims two regions; each access reaches it tagged with its region,
    in the region's byte order, and ListDevices lists both."""
    info = bus.device("rec")
    assert info is not None
    assert sorted(info.regions) == ["rec", "rec2"]
    for base, region in [(REC, "rec"), (REC2, "rec2")]:
        reply, records = recorded_during(rec, lambda b=base: bus.read(b + 8, 4))
        assert [(r["region"], r["offset"], r["size"]) for r in records] == [(region, 8, 4)]
        assert reply.data == bytes_from_records(records, 8, 4)
    assert read_records(rec)[-1]["byteorder"] != read_records(rec)[-2]["byteorder"]


# -- registered regions ------------------------------------------------------------------------


def test_registered_region_appears_in_topology_and_mtree_and_serves(proto_server, bus):
    """A device process that registers a region at an address shows up in GetTopology (with
    its device name), in the flat view and in Mtree, and accesses reach it."""
    dev = start_device(
        "mmiobus.devices.models.scratch:ScratchRam",
        proto_server.tcp,
        "--at",
        hex(SCRATCH_AT),
        "--size",
        "0x100",
        "--arg",
        "fill=0x6b",
        name="scratchpad",
    )
    try:
        topo = bus.topology()
        region = next(r for r in topo.regions if r.device == "scratchpad")
        assert region.size == 0x100
        flat = [fr for space in topo.address_spaces for fr in space.flat_view]
        assert any(fr.region == region.id and fr.start == SCRATCH_AT for fr in flat)
        assert f"{SCRATCH_AT:016x}" in bus.mtree()
        assert region.name in bus.mtree()

        assert bus.read(SCRATCH_AT, 2).data == bytes([0x6B, 0x6B])
        assert bus.write(SCRATCH_AT + 4, b"\x01\x02\x03\x04").result == MemTxResult.OK
        assert bus.read(SCRATCH_AT + 4, 4).data == b"\x01\x02\x03\x04"
    finally:
        dev.stop()


def test_unmapped_registered_region_disappears(proto_server, bus):
    """A region a device registered and then unmapped leaves the topology, and its addresses
    answer like any hole."""
    hole = bus.read(HOLE, 4)
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("transient")
        reply = dev.register(id="transient.regs", size=0x100, addr=RAW_AT, deadline_ms=30000)
        assert reply.code == 0, reply.message
        assert reply.region.id == "transient.regs"
        region = bus.region("transient.regs")
        assert region is not None and region.device == "transient"

        pending = bus.read_async(RAW_AT, 1)
        (access,), _ = dev.accesses(1)
        assert (access.handle, access.offset, access.size) == (reply.handle, 0, 1)
        dev.answer(devices_pb2.AccessReply(id=access.id, value=0x42))
        assert pending.result().data == b"\x42"

        assert dev.unmap(reply.handle).code == 0
        assert bus.region("transient.regs") is None
        assert "transient.regs" not in bus.mtree()
        after = bus.read(RAW_AT, 4)
    assert (after.data, after.result) == (hole.data, hole.result)


def test_unmapped_claimed_region_falls_back_to_absent_and_can_be_claimed_again(proto_server, bus):
    """Unmapping a claimed region makes it answer as its `absent` setting says (error) while
    the device stays attached; claiming it again serves it again."""
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("toggler")
        handle = dev.claim("toggled").handle
        assert dev.unmap(handle).code == 0
        assert bus.read(TOGGLED, 1).result == MemTxResult.ERROR
        info = bus.device("toggler")
        assert info is not None and list(info.regions) == []

        reply = dev.claim("toggled")
        assert reply.code == 0, reply.message
        pending = bus.read_async(TOGGLED + 2, 1)
        (access,), _ = dev.accesses(1)
        assert (access.handle, access.offset) == (reply.handle, 2)
        dev.answer(devices_pb2.AccessReply(id=access.id, value=0x19))
        assert pending.result().data == b"\x19"


def test_register_with_an_existing_region_id_is_already_exists(proto_server, bus):
    """Registering a region under an id the machine already has is ALREADY_EXISTS; the
    existing region is untouched."""
    before = bus.region("ram")
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("usurper")
        reply = dev.register(id="ram", size=0x100, addr=RAW_AT + 0x1000)
    assert reply.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert "ram" in reply.message
    assert bus.region("ram") == before


def test_register_in_unknown_container_is_not_found_and_leaves_nothing_behind(proto_server, bus):
    """Registering into a container that does not exist is NOT_FOUND naming it, and creates
    nothing: the same id can be registered properly afterwards on the same stream."""
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("misplaced")
        reply = dev.register(id="misplaced.regs", size=0x100, container="no-such-box", addr=0)
        assert reply.code == grpc.StatusCode.NOT_FOUND.value[0]
        assert "no-such-box" in reply.message
        assert bus.region("misplaced.regs") is None
        reply = dev.register(id="misplaced.regs", size=0x100, addr=RAW_AT + 0x2000)
        assert reply.code == 0, reply.message
        assert bus.region("misplaced.regs") is not None


def test_register_with_impossible_sizes_is_invalid_argument(proto_server, bus):
    """Registering a region whose valid sizes are impossible (min above max) is
    INVALID_ARGUMENT, and the device's stream stays usable."""
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("contrary")
        reply = dev.register(
            id="contrary.regs",
            size=0x100,
            addr=RAW_AT + 0x3000,
            valid=bus_pb2.AccessSpec(min=4, max=2),
        )
        assert reply.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "min" in reply.message
        assert bus.region("contrary.regs") is None
        assert dev.register(id="contrary.regs", size=0x100, addr=RAW_AT + 0x3000).code == 0


def test_regions_registered_without_id_get_fresh_ids_after_an_unmap(proto_server, bus):
    """A device that registers regions without naming them gets a new id each time, also
    after unmapping one of them."""
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("anonymous")
        first = dev.register(size=0x100, addr=RAW_AT + 0x4000)
        second = dev.register(size=0x100, addr=RAW_AT + 0x5000)
        assert (first.code, second.code) == (0, 0)
        assert first.region.id != second.region.id
        assert dev.unmap(first.handle).code == 0
        third = dev.register(size=0x100, addr=RAW_AT + 0x6000)
        assert third.code == 0, third.message
        assert third.region.id != second.region.id


# -- split and widened accesses ----------------------------------------------------------------


@pytest.mark.parametrize(("region", "impl"), [("bytes_le", 1), ("bytes_be", 1), ("halves_be", 2)])
def test_read_wider_than_impl_max_is_split_at_ascending_offsets(split, bus, region, impl):
    """A 4-byte read of a region whose impl max is smaller reaches the device as several
    impl-sized reads at ascending offsets; the bytes put together follow the region's byte
    order."""
    offset = 0x10
    reply, records = recorded_during(split, lambda: bus.read(SPLIT[region] + offset, 4))
    assert reply.result == MemTxResult.OK
    assert [(r["region"], r["op"], r["offset"], r["size"]) for r in records] == [
        (region, "read", offset + i, impl) for i in range(0, 4, impl)
    ]
    assert reply.data == bytes_from_records(records, offset, 4)


@pytest.mark.parametrize(("region", "impl"), [("bytes_le", 1), ("bytes_be", 1), ("halves_be", 2)])
def test_write_wider_than_impl_max_is_split_at_ascending_offsets(split, bus, region, impl):
    """A 4-byte write of a region whose impl max is smaller reaches the device as several
    impl-sized writes at ascending offsets carrying the written bytes in the region's order."""
    offset, data = 0x20, b"\x11\x22\x33\x44"
    reply, records = recorded_during(split, lambda: bus.write(SPLIT[region] + offset, data))
    assert reply.result == MemTxResult.OK
    assert [(r["region"], r["op"], r["offset"], r["size"]) for r in records] == [
        (region, "write", offset + i, impl) for i in range(0, 4, impl)
    ]
    assert bytes_from_records(records, offset, 4) == data


@pytest.mark.parametrize("region", ["words_le", "words_be"])
def test_read_narrower_than_impl_min_is_widened(split, bus, region):
    """A 1-byte read of a region whose impl min is 4 reaches the device as one 4-byte read,
    and the client gets the byte at the address it asked for."""
    offset = 0x14
    reply, records = recorded_during(split, lambda: bus.read(SPLIT[region] + offset, 1))
    assert reply.result == MemTxResult.OK
    assert [(r["region"], r["op"], r["offset"], r["size"]) for r in records] == [
        (region, "read", offset, 4)
    ]
    assert reply.data == bytes_from_records(records, offset, 1)


# -- many outstanding accesses, order, posted writes -------------------------------------------


def test_many_outstanding_accesses_are_matched_by_id(proto_server, bus):
    """Many accesses pending on one device at once, answered in reverse order, each get the
    answer with their own id."""
    count = 32
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("many")
        assert dev.claim("many").code == 0
        pending = [bus.read_async(MANY + 8 * i, 8) for i in range(count)]
        accesses, _ = dev.accesses(count)
        assert len({a.id for a in accesses}) == count
        value = {a.id: (a.offset * 0x0101010101 + 0x1122) & ((1 << 64) - 1) for a in accesses}
        dev.answer(
            *[devices_pb2.AccessReply(id=a.id, value=value[a.id]) for a in reversed(accesses)]
        )
        by_offset = {a.offset: value[a.id] for a in accesses}
        for i, fut in enumerate(pending):
            reply = fut.result()
            assert reply.result == MemTxResult.OK
            assert reply.data == by_offset[8 * i].to_bytes(8, "little")


def test_accesses_reach_device_in_dispatch_order_in_few_messages(proto_server, bus):
    """Consecutive accesses to one device (a batch of reads and writes) are sent before the
    earlier ones are answered, in few stream messages, in the order the bus dispatched them."""
    count = 48
    requests = [
        bus_pb2.RwRequest(id=i, addr=ORDERED + 4 * i, write=i.to_bytes(4, "little"))
        if i % 3 == 0
        else bus_pb2.RwRequest(id=i, addr=ORDERED + 4 * i, read=4)
        for i in range(count)
    ]
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("ordered")
        assert dev.claim("ordered").code == 0
        pending = bus.batch_async(requests)
        accesses, messages = dev.accesses(count)
        assert [(a.offset, a.write) for a in accesses] == [
            (r.addr - ORDERED, r.WhichOneof("op") == "write") for r in requests
        ]
        assert [a.value for a in accesses if a.write] == [
            int.from_bytes(r.write, "little") for r in requests if r.write
        ]
        assert messages <= count // 8
        dev.answer(
            *[devices_pb2.AccessReply(id=a.id, value=0 if a.write else a.offset) for a in accesses]
        )
        results = pending.result().results
    assert [r.result for r in results] == [0] * count
    assert [r.data for r in results if r.data] == [
        (r.addr - ORDERED).to_bytes(4, "little") for r in requests if r.read
    ]


def test_a_devices_dma_reads_of_another_devices_registers_are_pipelined_and_answered_in_order(
    proto_server,
):
    """A device's batch of DMA reads of another device's registers: all of them reach that
    device before it answers the first (a lone read waits without a task; the next one hands
    it to one that pipelines the rest), and the replies come back in order, with the values."""
    count = 4
    with RawDevice(proto_server.tcp) as registers, RawDevice(proto_server.tcp) as master:
        registers.hello("dma-registers")
        assert registers.claim("dma_target").code == 0
        master.hello("dma-master")
        requests = [
            devices_pb2.DmaRequest(id=100 + i, addr=DMA_TARGET + 8 * i, read=8)
            for i in range(count)
        ]
        master.send(devices_pb2.DeviceMessage(dmas=devices_pb2.DmaRequests(requests=requests)))
        accesses, _ = registers.accesses(count)
        assert [(a.offset, a.size, a.write) for a in accesses] == [
            (8 * i, 8, False) for i in range(count)
        ]
        values = {a.id: 0x0123_4567_0000 + a.offset for a in accesses}
        registers.answer(*[devices_pb2.AccessReply(id=i, value=v) for i, v in values.items()])
        replies: list[devices_pb2.DmaReply] = []
        while len(replies) < count:
            message = master.recv()
            kind = message.WhichOneof("msg")
            replies.extend(message.dmas.replies if kind == "dmas" else [message.dma])
    assert [r.id for r in replies] == [r.id for r in requests]
    assert [r.result for r in replies] == [MemTxResult.OK] * count
    assert [r.data for r in replies] == [values[a.id].to_bytes(8, "little") for a in accesses]


def test_posted_writes_are_answered_before_the_device_sees_them_and_keep_order(proto_server, bus):
    """Writes to a posted_writes region complete OK although the device has not answered them;
    the device then gets them (marked posted) before a later read, in order."""
    writes = [(0x0, b"\x01"), (0x8, b"\x02\x03"), (0x10, b"\x04\x05\x06\x07")]
    with RawDevice(proto_server.tcp) as dev:
        dev.hello("poster")
        reply = dev.claim("posted")
        assert reply.code == 0
        assert reply.region.posted_writes
        for offset, data in writes:
            assert bus.write(POSTED + offset, data).result == MemTxResult.OK
        pending = bus.read_async(POSTED + 0x20, 4)
        accesses, _ = dev.accesses(len(writes) + 1)
        assert [(a.write, a.posted, a.offset, a.size) for a in accesses] == [
            *[(True, True, o, len(d)) for o, d in writes],
            (False, False, 0x20, 4),
        ]
        assert [a.value for a in accesses[:-1]] == [int.from_bytes(d, "little") for _, d in writes]
        dev.answer(devices_pb2.AccessReply(id=accesses[-1].id, value=0xCAFE))
        assert pending.result().data == (0xCAFE).to_bytes(4, "little")
