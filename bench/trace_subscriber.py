"""A trace subscriber the trace benchmark switches over stdin: `all` (matches every access and
reads at full rate), `none` (matches nothing), `slow` (matches everything, reads one batch a
second), `off`. Prints `ok` after each switch, and on `off` how many events and gaps it saw."""

from __future__ import annotations

import asyncio
import sys

import grpc
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc

MODES = {
    "all": pb.TraceRequest(),
    "none": pb.TraceRequest(ranges=[pb.AddressRange(start=0xDEAD_0000_0000, size=1)]),
    "slow": pb.TraceRequest(queue_capacity=1000),
}


async def main(address: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = bus_pb2_grpc.BusStub(channel)
        task: asyncio.Task[None] | None = None
        seen = {"events": 0, "lost": 0}

        async def consume(mode: str) -> None:
            call = stub.Trace(MODES[mode])
            async for batch in call:
                for e in batch.events:
                    if e.lost:
                        seen["lost"] += e.lost
                    else:
                        seen["events"] += 1
                if mode == "slow":
                    await asyncio.sleep(1.0)

        while line := (await reader.readline()).decode().strip():
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                task = None
            if line == "off":
                print(f"events {seen['events']} lost {seen['lost']}", flush=True)
                seen = {"events": 0, "lost": 0}
                continue
            task = asyncio.create_task(consume(line))
            await asyncio.sleep(0.3)  # let the subscription reach the server
            print("ok", flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1]))
