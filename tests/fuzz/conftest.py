"""The fuzzed server of tests/fuzz: one per module, on ``support.fuzzing.FUZZ_MACHINE``, its
canary written first and checked last."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from mmiobus.v1 import bus_pb2, bus_pb2_grpc
from support.fuzzing import CANARY, CANARY_SPACE, FUZZ_MACHINE, FuzzTarget
from support.servers import ServerFactory


@pytest.fixture(scope="module")
def fuzz_target(machine_server: ServerFactory) -> Iterator[FuzzTarget]:
    """A server on ``FUZZ_MACHINE`` (devices answer within 50 ms or fail) with its canary
    written; checked at the end of the module."""
    server = machine_server(FUZZ_MACHINE, "--device-deadline", "50")
    channel = grpc.insecure_channel(server.tcp)
    bus = bus_pb2_grpc.BusStub(channel)
    reply = bus.Rw(bus_pb2.RwRequest(address_space=CANARY_SPACE, addr=0, write=CANARY), timeout=30)
    assert reply.result == 0
    target = FuzzTarget(server, channel)
    yield target
    try:
        target.check_survived()
    finally:
        channel.close()
