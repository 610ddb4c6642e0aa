"""The raw gRPC ceiling: the Bus service's message shapes, answered with no bus behind them.

Same process model and settings as `mmiobus serve` (grpc.aio on uvloop, the same channel
options), standard generated registration. Each reply has the shape of a real one: one result
per access, a 4-byte data field for reads, the request's id echoed.

    python bench/ceiling_server.py ADDR [ADDR...]   # prints "listening on ADDR" per address
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
from mmiobus.server.config import Limits
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from mmiobus.wire import limits_to_pb

ZERO = b"\0\0\0\0"


def _reply(req: pb.RwRequest) -> pb.RwResponse:
    return pb.RwResponse(id=req.id, data=ZERO if req.WhichOneof("op") == "read" else b"")


class Ceiling(bus_pb2_grpc.BusServicer):
    async def Rw(self, request, context):  # type: ignore[no-untyped-def]
        return _reply(request)

    async def RwBatch(self, request, context):  # type: ignore[no-untyped-def]
        return pb.RwBatchResponse(results=[_reply(r) for r in request.accesses])

    async def RwStream(self, request_iterator, context):  # type: ignore[no-untyped-def]
        async for message in request_iterator:
            yield pb.RwStreamResponse(results=[_reply(r) for r in message.accesses])

    async def GetInfo(self, request, context):  # type: ignore[no-untyped-def]
        return pb.Info(version="ceiling", limits=limits_to_pb(Limits()))


async def main(addresses: list[str]) -> None:
    lim = Limits()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", lim.max_message_bytes),
            ("grpc.max_send_message_length", lim.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    bus_pb2_grpc.add_BusServicer_to_server(Ceiling(), server)
    bound = []
    for address in addresses:
        port = server.add_insecure_port(address)
        bound.append(
            address if address.startswith("unix:") else f"{address.rsplit(':', 1)[0]}:{port}"
        )
    await server.start()
    for address in bound:
        print(f"listening on {address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1:]))
