"""A trace subscriber the trace benchmark switches over stdin: `all` (matches every access and
reads at full rate), `none` (matches nothing), `slow` (matches everything, reads one batch a
second), `off`. Prints `ok` after each switch, and on `off` how many events the last mode
received and how many the server reported lost; a slow subscriber first reads the rest of its
stream at full rate (the bus is idle then), so that every report of its losses arrives."""

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
    # The slow subscriber's channel keeps gRPC's initial 64 KiB flow-control window: with the
    # window growing (BDP probing, the default), the transport takes megabytes of events from
    # the bus before a reader that does not read holds it back (see trace.py).
    async with (
        grpc.aio.insecure_channel(address) as channel,
        grpc.aio.insecure_channel(address, options=[("grpc.http2.bdp_probe", 0)]) as slow,
    ):
        stubs = {"all": bus_pb2_grpc.BusStub(channel), "none": bus_pb2_grpc.BusStub(channel)}
        stubs["slow"] = bus_pb2_grpc.BusStub(slow)
        task: asyncio.Task[None] | None = None
        mode = "off"
        seen = {"events": 0, "lost": 0}
        catch_up = asyncio.Event()  # a slow subscriber: read at full rate from now on
        arrived = asyncio.Event()  # a stream message arrived

        async def consume(mode: str) -> None:
            call = stubs[mode].Trace(MODES[mode])
            async for batch in call:
                arrived.set()
                for e in batch.events:
                    if e.lost:
                        seen["lost"] += e.lost
                    else:
                        seen["events"] += 1
                if mode == "slow" and not catch_up.is_set():
                    try:
                        await asyncio.wait_for(catch_up.wait(), 1.0)
                    except TimeoutError:
                        pass

        while line := (await reader.readline()).decode().strip():
            if task is not None:
                if mode == "slow":  # read what is left, until the stream has been quiet a while
                    catch_up.set()
                    for _ in range(100):
                        arrived.clear()
                        try:
                            await asyncio.wait_for(arrived.wait(), 0.5)
                        except TimeoutError:
                            break
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                task = None
            if line == "off":
                print(f"events {seen['events']} lost {seen['lost']}", flush=True)
            seen = {"events": 0, "lost": 0}
            catch_up.clear()
            mode = line
            if line == "off":
                continue
            task = asyncio.create_task(consume(line))
            await asyncio.sleep(0.3)  # let the subscription reach the server
            print("ok", flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1]))
