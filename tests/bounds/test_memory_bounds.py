"""Memory is bounded by configuration, not by traffic or by a peer that stops reading: a RAM
budget for what clients create (``--max-ram-bytes``), resizes that neither copy nor touch a
lazily mapped region, a bounded queue to each device (``--max-device-queue``), trace events
that keep only the data their subscriber asked for, names of bounded length, and devices
forgotten when they leave."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from mmiobus.machine import Machine
from mmiobus.memory import MemorySystem
from mmiobus.server.config import ServerConfig
from mmiobus.server.devices.registry import DeviceRegistry
from mmiobus.server.irq import IrqRegistry
from mmiobus.server.services.tracing import trace_batch
from mmiobus.server.trace import Event, TraceFilter, TraceHub
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2
from support.machines import machine_yaml, mmio
from support.raw_device import RawDevice, StreamEnded, refusal
from support.servers import ServerFactory, ServerProcess
from support.wait import wait_for

MIB = 1 << 20
WINDOW = 0x1000_0000
MACHINE = machine_yaml(
    [
        {"name": "ram", "kind": "ram", "addr": 0, "size": 16 * MIB},
        mmio("win0", WINDOW, 0x1000, "win0", absent="error", valid=(1, 4), impl=(1, 4)),
    ]
)


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/PID/status")


def create_ram(rid: str, size: int) -> pb.TopologyOp:
    return pb.TopologyOp(create_region=pb.CreateRegion(id=rid, kind=pb.RAM, size=size))


# -- RAM created at run time -------------------------------------------------------------------


@pytest.fixture(scope="module")
def budgeted(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE, "--max-ram-bytes", "8M")


@pytest.fixture(scope="module")
def plain(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE)


@pytest.fixture
def stub(budgeted: ServerProcess) -> Iterator[bus_pb2_grpc.BusStub]:
    with grpc.insecure_channel(budgeted.tcp) as channel:
        yield bus_pb2_grpc.BusStub(channel)


def apply(stub: bus_pb2_grpc.BusStub, *ops: pb.TopologyOp) -> Any:
    return stub.ApplyTopology(pb.ApplyTopologyRequest(ops=ops), timeout=60)


def refused(stub: bus_pb2_grpc.BusStub, *ops: pb.TopologyOp) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        apply(stub, *ops)
    return info.value


def test_ram_created_past_the_budget_is_refused_before_it_is_allocated(
    budgeted: ServerProcess, stub: bus_pb2_grpc.BusStub
):
    """400 regions of 1 MiB in one small request: refused by name, nothing applied, and the
    server's memory did not grow by what they would have taken."""
    before = rss_bytes(budgeted.proc.pid)
    error = refused(stub, *[create_ram(f"many{i}", MIB) for i in range(400)])
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-ram-bytes" in error.details() and "nothing was applied" in error.details()
    assert rss_bytes(budgeted.proc.pid) - before < 32 * MIB
    topology = stub.GetTopology(pb.GetTopologyRequest(), timeout=30)
    assert not [r.id for r in topology.regions if r.id.startswith("many")]


def test_the_budget_counts_growth_and_gives_back_what_is_deleted(stub: bus_pb2_grpc.BusStub):
    apply(stub, create_ram("b0", 3 * MIB), create_ram("b1", 3 * MIB))
    error = refused(stub, create_ram("b2", 3 * MIB))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    grow = pb.TopologyOp(set_size=pb.SetSize(id="b0", size=6 * MIB))
    assert refused(stub, grow).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A failed transaction leaves the budget as it was: the same request fails the same way.
    missing = pb.TopologyOp(delete_region=pb.DeleteRegion(id="no-such-region"))
    assert refused(stub, create_ram("b3", MIB), missing).code() == grpc.StatusCode.NOT_FOUND
    apply(stub, create_ram("b3", MIB))
    apply(stub, pb.TopologyOp(delete_region=pb.DeleteRegion(id="b1")))
    apply(stub, grow)  # b0 6 MiB + b3 1 MiB
    apply(stub, *[pb.TopologyOp(delete_region=pb.DeleteRegion(id=r)) for r in ("b0", "b3")])


def test_resizing_a_lazily_mapped_region_neither_copies_nor_touches_it():
    """set_size of a region backed by a mapping: the process does not grow by its size, the
    bytes kept stay, the bytes that grow in read zero."""
    ms = MemorySystem()
    system = ms.container("system", 2**64)
    ram = ms.ram("big", 256 * MIB)
    system.add_subregion(0, ram)
    space = ms.address_space("memory", system)
    space.write(0x10, b"head")
    space.write(256 * MIB - 4, b"tail")
    before = rss_bytes()
    ram.set_size(512 * MIB)
    ram.set_size(128 * MIB)
    ram.set_size(768 * MIB)
    assert rss_bytes() - before < 32 * MIB
    assert space.read(0x10, 4).data == b"head"
    assert space.read(256 * MIB - 4, 4).data == bytes(4)  # shrunk away, grown back: zero


# -- what waits to go to a device ----------------------------------------------------------------


@pytest.fixture(scope="module")
def queued(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(
        MACHINE,
        "--max-access-bytes", "64K", "--max-device-queue", "256K", "--device-deadline", "20",
    )  # fmt: skip


class DeafDevice:
    """A device that says hello and then never reads its stream (raw bytes, so that nothing in
    the test process reads for it either)."""

    def __init__(self, address: str, name: str, *after_hello: Any) -> None:
        self.name = name
        self.channel = grpc.insecure_channel(address)
        self._more = threading.Event()
        hello = devices_pb2.DeviceMessage(
            hello=devices_pb2.Hello(name=name, min_protocol=1, max_protocol=1)
        )
        messages = [hello, *after_hello]

        def requests() -> Iterator[bytes]:
            for m in messages:
                yield m.SerializeToString()
            self._more.wait(120)

        self.call: Any = self.channel.stream_stream(
            "/mmiobus.v1.Devices/Attach", request_serializer=None, response_deserializer=None
        )(requests(), timeout=120)

    def ended(self, server: ServerProcess) -> grpc.RpcError:
        """Once ``server`` says it let the device go, read: the status the bus ended the stream
        with (what was in flight on the connection comes first)."""
        wait_for(
            lambda: f"device detached                device={self.name}" in server.log(),
            timeout=120,
            message=lambda: f"the bus kept the device:\n{server.log()[-3000:]}",
        )
        try:
            for _ in self.call:
                pass
        except grpc.RpcError as e:
            return e
        raise AssertionError("the bus never ended the stream")

    def close(self) -> None:
        self._more.set()
        self.call.cancel()
        self.channel.close()


def test_a_device_that_does_not_read_its_dma_replies_is_ended(queued: ServerProcess):
    """Each 14-byte DMA read asks for 64 KiB of reply; past --max-device-queue of them waiting
    the session ends with RESOURCE_EXHAUSTED saying the device stopped reading."""
    dma = [
        devices_pb2.DeviceMessage(dma=devices_pb2.DmaRequest(id=i, addr=0, read=64 * 1024))
        for i in range(200)
    ]
    device = DeafDevice(queued.tcp, "deaf-dma", *dma)
    try:
        error = device.ended(queued)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "stopped reading" in error.details()
    finally:
        device.close()


def test_a_device_that_stops_reading_accesses_is_ended(queued: ServerProcess):
    """Accesses forwarded to a stalled device pile up no further than --max-device-queue: then
    its session ends, and what was waiting fails."""
    claim = devices_pb2.DeviceMessage(
        region=devices_pb2.RegionRequest(request_id=1, claim=devices_pb2.ClaimRegion(region="win0"))
    )
    device = DeafDevice(queued.tcp, "win0", claim)
    try:
        with grpc.insecure_channel(queued.tcp) as channel:
            stub = bus_pb2_grpc.BusStub(channel)
            # Far more than the connection itself buffers (megabytes) on top of the queue.
            batch = pb.RwBatchRequest(
                accesses=[pb.RwRequest(addr=WINDOW + i % 0x1000, read=1) for i in range(65536)]
            )
            calls = [stub.RwBatch.future(batch, timeout=120) for _ in range(4)]
            for call in calls:  # each access timed out, or failed as the device left
                assert all(r.result for r in call.result().results)
        error = device.ended(queued)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "stopped reading" in error.details()
    finally:
        device.close()


def test_a_device_that_sends_dma_faster_than_it_is_carried_out_is_ended(queued: ServerProcess):
    """DMA waits its turn behind the device's earlier DMA; what waits is bounded too: a device
    that sends 64 KiB writes into a slow window faster than they complete is let go."""
    claim = devices_pb2.DeviceMessage(
        region=devices_pb2.RegionRequest(request_id=1, claim=devices_pb2.ClaimRegion(region="win0"))
    )
    slow = DeafDevice(queued.tcp, "win0", claim)
    data = bytes(range(256)) * 256  # 64 KiB
    writes = [
        devices_pb2.DeviceMessage(dma=devices_pb2.DmaRequest(id=i, addr=WINDOW, write=data))
        for i in range(40)
    ]
    eager = DeafDevice(queued.tcp, "eager-dma", *writes)
    try:
        error = eager.ended(queued)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "faster than the bus carries them out" in error.details()
    finally:
        eager.close()
        slow.close()


# -- trace events ----------------------------------------------------------------------------------


def test_a_queued_trace_event_holds_only_the_data_its_subscriber_sends():
    hub = TraceHub()
    sub = hub.subscribe(TraceFilter(), capacity=10, max_data=8)
    big = bytes(range(256)) * 4096  # 1 MiB
    event = Event(1, 0, "memory", 0, len(big), True, big, 0, "ram", 0, "ram", "client", 0, 0)
    hub.offer([event], lambda record, seq: record)
    [queued] = sub.queue
    assert isinstance(queued, Event) and len(queued.data) <= 9
    [sent] = trace_batch(sub.take(10), 8).events
    assert (sent.data, sent.data_truncated, sent.size) == (big[:8], True, len(big))


# -- names ---------------------------------------------------------------------------------------


LONG = "n" * 300


def test_names_longer_than_the_limit_are_refused(plain: ServerProcess):
    with grpc.insecure_channel(plain.tcp) as channel:
        stub = bus_pb2_grpc.BusStub(channel)
        refuses_long_names(stub)


def refuses_long_names(stub: bus_pb2_grpc.BusStub) -> None:
    for op in (
        create_ram(LONG, 16),
        pb.TopologyOp(create_region=pb.CreateRegion(id="short", name=LONG, kind=pb.RAM, size=16)),
        pb.TopologyOp(create_address_space=pb.CreateAddressSpace(id=LONG, root="system")),
    ):
        error = refused(stub, op)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "longer than the limit of 256 bytes" in error.details()


def test_a_device_name_longer_than_the_limit_is_refused(plain: ServerProcess):
    hello = devices_pb2.DeviceMessage(
        hello=devices_pb2.Hello(name=LONG, min_protocol=1, max_protocol=1)
    )
    ended = refusal(plain.tcp, hello)
    assert ended.code == grpc.StatusCode.INVALID_ARGUMENT and "256" in ended.details


def test_device_regions_and_lines_with_long_names_are_refused(plain: ServerProcess):
    with RawDevice(plain.tcp) as dev:
        dev.hello("namer")
        reply = dev.register(id=LONG, size=0x100, address_space="", addr=0x2000_0000)
        assert reply.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "256" in reply.message
        dev.send(devices_pb2.DeviceMessage(irq=devices_pb2.IrqUpdate(line=LONG, level=True)))
        with pytest.raises(StreamEnded) as info:
            while True:
                dev.recv()
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


# -- devices that leave ----------------------------------------------------------------------------


def test_devices_that_leave_are_forgotten_with_their_lines():
    machine = Machine.default()
    irqs = IrqRegistry()
    registry = DeviceRegistry(machine, irqs, ServerConfig())
    for n in range(100):
        session = registry.admit(f"passing{n}", "test", 0)
        irqs.set(f"passing{n}.irq", True)
        registry.release(session)
    assert registry.identities == {}
    assert irqs.lines == {}


def test_regions_past_the_limit_are_refused_for_clients_and_devices(machine_server: ServerFactory):
    """`--max-regions`: the machine's regions and address spaces; a create past it is
    refused with the option's name and nothing applied, a device's registration too."""
    machine = Machine.from_text(MACHINE)
    start = len(machine.regions) + len(machine.system.address_spaces)
    server = machine_server(MACHINE, "--max-regions", str(start + 2))
    container = lambda rid: pb.TopologyOp(create_region=pb.CreateRegion(  # noqa: E731
        id=rid, kind=pb.CONTAINER, size=0x1000))  # fmt: skip
    with grpc.insecure_channel(server.tcp) as channel:
        stub = bus_pb2_grpc.BusStub(channel)
        apply(stub, container("c1"))
        error = refused(stub, container("c2"), container("c3"))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-regions" in error.details() and "ops[1]" in error.details()
        ids = {r.id for r in stub.GetTopology(pb.GetTopologyRequest()).regions}
        assert "c2" not in ids and "c1" in ids  # nothing of the refused transaction
        apply(stub, container("c2"))  # the last one
        with RawDevice(server.tcp) as dev:
            dev.hello("grower")
            reply = dev.register(id="more", size=0x100, address_space="", addr=0x2000_0000)
            assert reply.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            assert "--max-regions" in reply.message
        apply(stub, pb.TopologyOp(delete_region=pb.DeleteRegion(id="c1")))
        apply(stub, container("c3"))  # room again
