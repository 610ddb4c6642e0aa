"""The raw two-hop relay: the ceiling for forwarded MMIO.

A client talks to the relay's Bus service (Rw, RwStream), the relay forwards each access over a
Devices.Attach stream to a device process, which answers each at once; the same message shapes
as mmiobus, one access per message on both hops, no memory model, no batching. The relay keeps
many accesses in flight (it does not wait for one answer before forwarding the next).

    python bench/relay.py serve ADDR          # prints "listening on ADDR"
    python bench/relay.py device ADDR         # prints "serving" once attached
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from typing import Any

import grpc
from mmiobus.server.config import Limits
from mmiobus.v1 import bus_pb2 as bpb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2_grpc
from mmiobus.v1 import devices_pb2 as pb


class Relay(bus_pb2_grpc.BusServicer, devices_pb2_grpc.DevicesServicer):
    def __init__(self) -> None:
        self.outbox: asyncio.Queue[pb.BusMessage] = asyncio.Queue()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.attached = asyncio.Event()

    def forward(self, req: bpb.RwRequest) -> asyncio.Future[Any]:
        rid = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        op = req.WhichOneof("op")
        access = pb.Access(
            id=rid, handle=1, offset=req.addr & 0xFFF, size=req.read or 4, write=op == "write"
        )
        self.outbox.put_nowait(pb.BusMessage(accesses=pb.AccessRequests(accesses=[access])))
        return fut

    async def Rw(self, request, context):  # type: ignore[no-untyped-def]
        reply = await self.forward(request)
        return bpb.RwResponse(id=request.id, data=reply.value.to_bytes(4, "little"))

    async def RwStream(self, request_iterator, context):  # type: ignore[no-untyped-def]
        answers: asyncio.Queue[Any] = asyncio.Queue()

        async def take() -> None:
            async for message in request_iterator:
                futs = [(r.id, self.forward(r)) for r in message.accesses]
                await answers.put(futs)
            await answers.put(None)

        reader = asyncio.create_task(take())
        try:
            while (futs := await answers.get()) is not None:
                results = []
                for rid, fut in futs:
                    reply = await fut
                    results.append(bpb.RwResponse(id=rid, data=reply.value.to_bytes(4, "little")))
                yield bpb.RwStreamResponse(results=results)
        finally:
            reader.cancel()

    async def GetInfo(self, request, context):  # type: ignore[no-untyped-def]
        lim = Limits()
        return bpb.Info(
            version="relay",
            limits=bpb.Limits(
                max_access_bytes=lim.max_access_bytes,
                max_batch_bytes=lim.max_batch_bytes,
                max_batch_accesses=lim.max_batch_accesses,
                max_topology_ops=lim.max_topology_ops,
                max_message_bytes=lim.max_message_bytes,
            ),
        )

    async def Attach(self, request_iterator, context):  # type: ignore[no-untyped-def]
        async def answers() -> None:
            async for message in request_iterator:
                for reply in message.replies.replies:
                    fut = self.pending.pop(reply.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(reply)

        reader = asyncio.create_task(answers())
        yield pb.BusMessage(welcome=pb.Welcome(protocol_version=1))
        try:
            while True:
                yield await self.outbox.get()
        finally:
            reader.cancel()


async def serve(address: str) -> None:
    lim = Limits()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", lim.max_message_bytes),
            ("grpc.max_send_message_length", lim.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    relay = Relay()
    bus_pb2_grpc.add_BusServicer_to_server(relay, server)
    devices_pb2_grpc.add_DevicesServicer_to_server(relay, server)
    port = server.add_insecure_port(address)
    await server.start()
    bound = address if address.startswith("unix:") else f"{address.rsplit(':', 1)[0]}:{port}"
    print(f"listening on {bound}", flush=True)
    await _until_signal()
    await server.stop(1)


async def device(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = devices_pb2_grpc.DevicesStub(channel).Attach()
        await call.write(
            pb.DeviceMessage(hello=pb.Hello(name="raw", min_protocol=1, max_protocol=1))
        )
        print("serving", flush=True)
        stop = asyncio.ensure_future(_until_signal())
        while (message := await call.read()) is not grpc.aio.EOF:
            for access in message.accesses.accesses:
                reply = pb.AccessReply(id=access.id, value=0)
                await call.write(pb.DeviceMessage(replies=pb.AccessReplies(replies=[reply])))
            if stop.done():
                break


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


if __name__ == "__main__":
    import uvloop

    role, address = sys.argv[1], sys.argv[2]
    uvloop.run(serve(address) if role == "serve" else device(address))
