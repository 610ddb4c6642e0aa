"""Churn: 500 devices and 500 clients connect, work and leave; the server's memory (VmRSS) and
open descriptors stay flat within a tolerance, measured after a warm-up. Every cycle leaves
something behind if anything does: each device has a name of its own, registers a region,
raises a line and makes DMA; each client reads, writes, subscribes to traces and interrupt
lines and leaves mid-stream."""

from __future__ import annotations

import os
import sys

import grpc
import pytest
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2, devices_pb2_grpc
from support.raw_device import RawDevice
from support.servers import ServerFactory, ServerProcess
from support.wait import wait_for

CYCLES = int(os.environ.get("MMIOBUS_CHURN_CYCLES", "500"))
WARM_UP = 50
RSS_TOLERANCE = 24 << 20  # bytes the server may grow by over CYCLES cycles (allocator noise)
FD_TOLERANCE = 8

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID (Linux only)")


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(None, "--device-deadline", "200")


def footprint(server: ServerProcess) -> tuple[int, int]:
    """(VmRSS in bytes, open descriptors) of the server process."""
    pid = server.proc.pid
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def device_cycle(address: str, n: int) -> None:
    """A device with a new name: registers a region, raises a line, reads RAM by DMA,
    answers one access, leaves."""
    with RawDevice(address) as dev:
        dev.hello(f"churn{n}")
        reply = dev.register(id=f"churn{n}.r", size=0x100, address_space="", addr=0x4000_0000)
        assert reply.code == 0, reply
        dev.send(devices_pb2.DeviceMessage(irq=devices_pb2.IrqUpdate(line="irq", level=True)))
        dev.send(devices_pb2.DeviceMessage(dma=devices_pb2.DmaRequest(id=1, addr=0x1000, read=64)))
        with grpc.insecure_channel(address) as channel:
            read = bus_pb2_grpc.BusStub(channel).Rw.future(
                pb.RwRequest(addr=0x4000_0000, read=4), timeout=30
            )
            got_dma = answered = False
            while not (got_dma and answered):
                message = dev.recv()
                kind = message.WhichOneof("msg")
                if kind == "accesses":
                    dev.answer(
                        *[
                            devices_pb2.AccessReply(id=a.id, value=n & 0xFF)
                            for a in message.accesses.accesses
                        ]
                    )
                    answered = True
                elif kind == "dma":
                    got_dma = True
            assert read.result().data == bytes([n & 0xFF, 0, 0, 0])


def client_cycle(address: str, n: int) -> None:
    """A client: a write and a read, a trace and an interrupt watch dropped mid-stream."""
    with grpc.insecure_channel(address) as channel:
        bus = bus_pb2_grpc.BusStub(channel)
        addr = 0x10_0000 + (n % 256) * 16
        bus.Rw(pb.RwRequest(addr=addr, write=n.to_bytes(4, "little")), timeout=30)
        trace = bus.Trace(pb.TraceRequest(regions=[f"churn{n}*"]), timeout=30)
        watch = devices_pb2_grpc.DevicesStub(channel).WatchIrqs(
            devices_pb2.WatchIrqsRequest(lines=[f"churn{n}.*"]), timeout=30
        )
        assert bus.Rw(pb.RwRequest(addr=addr, read=4), timeout=30).data == n.to_bytes(4, "little")
        trace.cancel()
        watch.cancel()


def settled(server: ServerProcess) -> None:
    """Every device the cycles attached has left."""

    def no_devices() -> bool:
        with grpc.insecure_channel(server.tcp) as channel:
            reply = devices_pb2_grpc.DevicesStub(channel).ListDevices(
                devices_pb2.ListDevicesRequest(), timeout=30
            )
        return not [d for d in reply.devices if d.name.startswith("churn")]

    wait_for(no_devices, message="devices stayed attached")


def test_devices_and_clients_that_come_and_go_leave_nothing_behind(server: ServerProcess):
    for n in range(WARM_UP):
        device_cycle(server.tcp, n)
        client_cycle(server.tcp, n)
    settled(server)
    rss0, fds0 = footprint(server)
    for n in range(WARM_UP, WARM_UP + CYCLES):
        device_cycle(server.tcp, n)
        client_cycle(server.tcp, n)
    settled(server)
    rss1, fds1 = footprint(server)
    assert rss1 - rss0 <= RSS_TOLERANCE, (
        f"the server grew by {(rss1 - rss0) >> 10} KiB over {CYCLES} cycles (from {rss0 >> 20} MiB)"
    )
    assert fds1 - fds0 <= FD_TOLERANCE, f"open descriptors went from {fds0} to {fds1}"
    with grpc.insecure_channel(server.tcp) as channel:
        lines = devices_pb2_grpc.DevicesStub(channel).GetIrqs(
            devices_pb2.GetIrqsRequest(lines=["churn*"]), timeout=30
        )
        regions = bus_pb2_grpc.BusStub(channel).GetTopology(pb.GetTopologyRequest(), timeout=30)
    assert list(lines.lines) == []
    assert not [r.id for r in regions.regions if r.id.startswith("churn")]
