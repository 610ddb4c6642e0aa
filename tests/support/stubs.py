"""Raw generated ``Bus`` stubs on a channel of their own, closed when the block ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import grpc
from mmiobus.v1 import bus_pb2_grpc


@contextmanager
def bus_stub(address: str) -> Iterator[bus_pb2_grpc.BusStub]:
    """A blocking stub on ``address``."""
    with grpc.insecure_channel(address) as channel:
        yield bus_pb2_grpc.BusStub(channel)


@asynccontextmanager
async def aio_bus_stub(address: str) -> AsyncIterator[bus_pb2_grpc.BusStub]:
    """An asyncio stub on ``address``."""
    async with grpc.aio.insecure_channel(address) as channel:
        yield bus_pb2_grpc.BusStub(channel)
