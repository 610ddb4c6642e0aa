"""No single request within the default limits holds the server's event loop for more than
100 ms, measured as the latency of another client's RAM reads meanwhile
(``support.loop_latency``; the one wall-clock bound the tests assert, with a margin). One test
per request known to have held it: looping aliases, idle trace subscribers, a large read of a
hole or of a device window, one read fanning out into many forwarded accesses, huge glob
patterns."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from mmiobus.memory.access_loop import MAX_PIECES
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2, devices_pb2_grpc
from support.loop_latency import assert_loop_free
from support.machines import machine_yaml, mmio
from support.raw_device import RawDevice, StreamEnded
from support.servers import ServerFactory, ServerProcess
from support.wait import wait_for

MIB = 1 << 20
HOLE = 0x4000_0000
ERROR_WINDOW = 0x5000_0000  # a device window whose device is away: every piece fails, 1 call each
UNASSIGNED_WINDOW = 0x6000_0000  # one whose device is away and which answers like a hole
BYTES_WINDOW = 0x7000_0000  # byte-wide, served by the test as a raw device
MACHINE = machine_yaml(
    [
        {"name": "ram", "kind": "ram", "addr": 0, "size": 16 * MIB},
        mmio("errwin", ERROR_WINDOW, MIB, "errdev", absent="error", valid=(1, 4), impl=(1, 4)),
        mmio("unwin", UNASSIGNED_WINDOW, MIB, "undev", absent="unassigned", valid=(1, 4)),
        mmio("bytes0", BYTES_WINDOW, MIB, "bytes0", valid=(1, 1), impl=(1, 1)),
    ]
)


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE)


@pytest.fixture
def stub(server: ServerProcess) -> Iterator[bus_pb2_grpc.BusStub]:
    big = [("grpc.max_receive_message_length", 64 * MIB)]  # a batch's reply may be 16 MiB
    with grpc.insecure_channel(server.tcp, options=big) as channel:
        yield bus_pb2_grpc.BusStub(channel)


def rw(stub: bus_pb2_grpc.BusStub, addr: int, length: int) -> pb.RwResponse:
    return stub.Rw(pb.RwRequest(addr=addr, read=length), timeout=120)


@pytest.mark.parametrize("addr", [HOLE, UNASSIGNED_WINDOW], ids=["hole", "unassigned"])
def test_a_batch_reading_16_mib_of_holes_does_not_hold_the_loop(
    server: ServerProcess, stub: bus_pb2_grpc.BusStub, addr: int
):
    """A hole (or a window whose device is away and which answers like one) is answered in
    bulk, not a call per 4 bytes: a batch of 16 reads of 1 MiB, as much as one batch may ask
    by default, is quick. The answer is as before: zeros, MEMTX_DECODE_ERROR."""
    batch = pb.RwBatchRequest(accesses=[pb.RwRequest(addr=addr, read=MIB)] * 16)
    reply = stub.RwBatch(batch, timeout=300)
    assert all((r.data, r.result) == (bytes(MIB), 2) for r in reply.results)
    assert_loop_free(
        server.tcp, lambda: stub.RwBatch(batch, timeout=300), what="a 16 MiB batch of holes"
    )


def test_a_1_mib_read_of_a_window_whose_device_is_away_does_not_hold_the_loop(
    server: ServerProcess, stub: bus_pb2_grpc.BusStub
):
    """Each piece goes to the window's ops (its device is away: MEMTX_ERROR); they go in
    rounds, the loop running others between them."""
    reply = rw(stub, ERROR_WINDOW, MIB)
    assert (reply.data, reply.result) == (bytes(MIB), 1)
    assert_loop_free(server.tcp, lambda: rw(stub, ERROR_WINDOW, MIB), what="a 1 MiB read")


class ByteDevice:
    """The test as the device serving BYTES_WINDOW, byte by byte: each access answers the low
    byte of offset * 7, and the most accesses ever outstanding at once is recorded."""

    def __init__(self, address: str) -> None:
        self.raw = RawDevice(address)
        self.raw.hello("bytes0")
        assert self.raw.claim("bytes0").code == 0
        self.most_outstanding = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    message = self.raw.recv(timeout=0.2)
                except Exception:
                    continue
                if message.WhichOneof("msg") != "accesses":
                    continue
                pending = list(message.accesses.accesses)
                self.most_outstanding = max(self.most_outstanding, len(pending))
                self.raw.answer(
                    *[
                        devices_pb2.AccessReply(id=a.id, value=(a.offset * 7) & 0xFF)
                        for a in pending
                    ]
                )
        except StreamEnded:
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.raw.close()


def test_one_read_of_a_byte_wide_device_goes_out_in_bounded_rounds(
    server: ServerProcess, stub: bus_pb2_grpc.BusStub
):
    """A 64 KiB read of a byte-wide device is 65,536 forwarded accesses: they go out in rounds
    of at most MAX_PIECES, each once the previous one is answered, so no deadline expires
    before its access is even sent and the loop is never held. The data is what the device
    answered, byte for byte."""
    device = ByteDevice(server.tcp)
    try:
        length = 64 * 1024
        reply = rw(stub, BYTES_WINDOW, length)
        assert reply.result == 0
        assert reply.data == bytes((i * 7) & 0xFF for i in range(length))
        assert 0 < device.most_outstanding <= MAX_PIECES
        assert_loop_free(server.tcp, lambda: rw(stub, BYTES_WINDOW, length), what="the read")
    finally:
        device.close()


def test_aliases_looping_through_each_other_are_refused_without_holding_the_loop(
    server: ServerProcess, stub: bus_pb2_grpc.BusStub
):
    """The render stops at its budget and the transaction is refused: quickly, every time."""
    size = 1 << 40

    def create(rid: str, kind: int, size: int, **fields: object) -> pb.TopologyOp:
        return pb.TopologyOp(create_region=pb.CreateRegion(id=rid, kind=kind, size=size, **fields))

    def add(parent: str, child: str, addr: int) -> pb.TopologyOp:
        return pb.TopologyOp(add_subregion=pb.AddSubregion(parent=parent, child=child, addr=addr))

    ops = [
        create("loop", pb.CONTAINER, size),
        create("loop.a", pb.ALIAS, size - 1, target="loop"),
        create("loop.b", pb.ALIAS, size - 2, target="loop"),
        add("loop", "loop.a", 1),
        add("loop", "loop.b", 2),
        pb.TopologyOp(create_address_space=pb.CreateAddressSpace(id="loopy", root="loop")),
    ]

    def apply() -> None:
        with pytest.raises(grpc.RpcError) as info:
            stub.ApplyTopology(pb.ApplyTopologyRequest(ops=ops), timeout=120)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    assert_loop_free(server.tcp, apply, what="a transaction of looping aliases")


def test_idle_trace_subscribers_cost_a_batch_nothing(
    server: ServerProcess, stub: bus_pb2_grpc.BusStub
):
    """1,000 subscribers whose filters match nothing: a batch of 65,536 RAM reads does not pay
    for each of them per access."""
    joined = server.log().count("trace subscriber joined")
    with grpc.insecure_channel(server.tcp) as channel:
        tracer = bus_pb2_grpc.BusStub(channel)
        request = pb.TraceRequest(regions=["no-such-region-*"], initiators=["nobody"])
        calls = [tracer.Trace(request) for _ in range(1000)]
        try:
            wait_for(
                lambda: server.log().count("trace subscriber joined") >= joined + 1000,
                timeout=120,
                message="the subscribers did not all join",
            )
            batch = pb.RwBatchRequest(
                accesses=[pb.RwRequest(addr=(i * 4) % MIB, read=4) for i in range(65536)]
            )
            assert_loop_free(
                server.tcp,
                lambda: stub.RwBatch(batch, timeout=300),
                runs=2,
                what="a 65,536-read batch with 1,000 idle subscribers",
                probe_addr=2 * MIB,
            )
        finally:
            for call in calls:
                call.cancel()


@pytest.mark.parametrize("rpc", ["Trace", "GetIrqs"])
def test_a_multi_megabyte_glob_is_refused_before_it_is_compiled(
    server: ServerProcess, stub: bus_pb2_grpc.BusStub, rpc: str
):
    """Patterns are bounded in length (and number): refused by name, at once."""
    pattern = "a*" * (2 * MIB)  # 4 MiB

    def ask() -> None:
        with grpc.insecure_channel(server.tcp) as channel, pytest.raises(grpc.RpcError) as info:
            if rpc == "Trace":
                request = pb.TraceRequest(regions=[pattern])
                next(iter(bus_pb2_grpc.BusStub(channel).Trace(request, timeout=60)))
            else:
                devices = devices_pb2_grpc.DevicesStub(channel)
                devices.GetIrqs(devices_pb2.GetIrqsRequest(lines=[pattern]), timeout=60)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "longer than the limit" in info.value.details()

    assert_loop_free(server.tcp, ask, what=f"a {rpc} with a 4 MiB pattern")
