"""The bus's bookkeeping agrees with itself: a device that leaves removes only what it created,
and when a client deletes a region a device serves, the binding goes too, so that the device
list agrees with the topology."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2, devices_pb2_grpc
from support.machines import machine_yaml, mmio
from support.raw_device import RawDevice
from support.servers import ServerFactory, ServerProcess
from support.wait import wait_for

MACHINE = machine_yaml(
    [
        {"name": "ram", "kind": "ram", "addr": 0, "size": 1 << 20},
        mmio("claimed0", 0x1000_0000, 0x100, "keeper", absent="error"),
    ]
)


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(MACHINE)


@pytest.fixture
def stub(server: ServerProcess) -> Iterator[bus_pb2_grpc.BusStub]:
    with grpc.insecure_channel(server.tcp) as channel:
        yield bus_pb2_grpc.BusStub(channel)


def apply(stub: bus_pb2_grpc.BusStub, *ops: pb.TopologyOp) -> None:
    stub.ApplyTopology(pb.ApplyTopologyRequest(ops=ops), timeout=30)


def region_ids(stub: bus_pb2_grpc.BusStub) -> list[str]:
    return [r.id for r in stub.GetTopology(pb.GetTopologyRequest(), timeout=30).regions]


def device_regions(server: ServerProcess, name: str) -> list[str] | None:
    with grpc.insecure_channel(server.tcp) as channel:
        reply = devices_pb2_grpc.DevicesStub(channel).ListDevices(
            devices_pb2.ListDevicesRequest(), timeout=30
        )
    return next((list(d.regions) for d in reply.devices if d.name == name), None)


def delete(rid: str) -> pb.TopologyOp:
    return pb.TopologyOp(delete_region=pb.DeleteRegion(id=rid))


def test_a_device_that_leaves_removes_only_what_it_created(
    server: ServerProcess, stub: bus_pb2_grpc.BusStub
):
    """A client deletes the region a device registered and makes one of its own with the same
    id: when the device leaves, the client's region stays."""
    dev = RawDevice(server.tcp)
    try:
        dev.hello("leaver")
        reply = dev.register(id="reused", size=0x100, address_space="", addr=0x2000_0000)
        assert reply.code == 0
        apply(
            stub,
            delete("reused"),
            pb.TopologyOp(create_region=pb.CreateRegion(id="reused", kind=pb.RAM, size=0x10)),
            pb.TopologyOp(
                add_subregion=pb.AddSubregion(parent="system", child="reused", addr=0x3000_0000)
            ),
        )
    finally:
        dev.close()
    wait_for(lambda: device_regions(server, "leaver") is None, message="the device stayed")
    assert "reused" in region_ids(stub)
    reply = stub.Rw(pb.RwRequest(addr=0x3000_0000, write=b"\x2a"), timeout=30)
    assert reply.result == 0


def test_a_served_region_a_client_deletes_leaves_the_device_list_too(
    server: ServerProcess, stub: bus_pb2_grpc.BusStub
):
    """A claimed region and a registered one, both deleted by a client: the device serves
    neither any more, as far as ``devices`` says, and asking to unmap them finds nothing."""
    with RawDevice(server.tcp) as dev:
        dev.hello("keeper")
        assert dev.claim("claimed0").code == 0
        assert dev.register(id="made0", size=0x100, address_space="", addr=0x2100_0000).code == 0
        assert sorted(device_regions(server, "keeper") or []) == ["claimed0", "made0"]
        apply(stub, delete("claimed0"), delete("made0"))
        assert device_regions(server, "keeper") == []
        assert not {"claimed0", "made0"} & set(region_ids(stub))
        reply = dev.unmap(dev.handles["made0"])
        assert reply.code == grpc.StatusCode.NOT_FOUND.value[0]
