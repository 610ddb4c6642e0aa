"""Forwarded MMIO benchmark: 4-byte reads that go client -> server -> device process -> back,
next to a raw two-hop gRPC relay of the same message shapes (bench/relay.py) measured in the
same run, in alternating rounds (rows report the median round; ratios are paired per round).

The device is the scratch RAM model run by `mmiobus device run`; the relay's device answers
each access at once. Targets (issue "Remote devices"): one in flight >= 0.8x the relay; 64 in
flight >= 1.2x the relay at 64 in flight.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from mmiobus.client import AsyncBus
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from network import MMIOBUS, Row, _median, _start, _stats, _stop, _timed, _verdict

HERE = Path(__file__).resolve().parent
DEVICE_ADDR = 0x1000_0000
ROUNDS = int(os.environ.get("MMIOBUS_BENCH_ROUNDS", "7"))

MACHINE = """\
address_spaces: [{name: memory, root: system}]
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 1M}
      - name: dev
        kind: mmio
        addr: 0x10000000
        size: 0x1000
        device: bench
        valid: {min: 1, max: 8}
        impl: {min: 1, max: 8}
"""


def _read(i: int = 0) -> pb.RwRequest:
    return pb.RwRequest(id=i, addr=DEVICE_ADDR, read=4)


async def stream_one(stub: bus_pb2_grpc.BusStub, name: str) -> Row:
    call = stub.RwStream()

    async def round_trip() -> None:
        await call.write(pb.RwStreamRequest(accesses=[_read()]))
        await call.read()

    await round_trip()
    done, elapsed, lat = await _timed(round_trip, 1)
    await call.done_writing()
    return _stats(name, done, elapsed, lat)


async def stream_many(stub: bus_pb2_grpc.BusStub, name: str, inflight: int) -> Row:
    """One access per message, ``inflight`` messages outstanding (what the relay can do)."""
    call = stub.RwStream()
    window = asyncio.Semaphore(inflight)
    sent: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    stop_at = time.perf_counter() + float(os.environ.get("MMIOBUS_BENCH_SECONDS", "0.6"))

    async def writer() -> None:
        while time.perf_counter() < stop_at:
            await window.acquire()
            await sent.put(time.perf_counter())
            await call.write(pb.RwStreamRequest(accesses=[_read()]))
        await sent.put(-1.0)
        await call.done_writing()

    async def reader() -> int:
        n = 0
        while (t := await sent.get()) >= 0:
            await call.read()
            latencies.append(time.perf_counter() - t)
            window.release()
            n += 1
        return n

    start = time.perf_counter()
    _, n = await asyncio.gather(writer(), reader())
    return _stats(name, n, time.perf_counter() - start, latencies)


async def library(bus: AsyncBus, name: str, inflight: int) -> Row:
    async with bus.stream() as s:
        await s.read(DEVICE_ADDR, 4)
        done, elapsed, lat = await _timed(lambda: s.read(DEVICE_ADDR, 4), inflight)
    return _stats(name, done, elapsed, lat)


async def _measure(bus_addr: str, relay_addr: str) -> dict[str, list[Row]]:
    async with (
        grpc.aio.insecure_channel(bus_addr) as bch,
        grpc.aio.insecure_channel(relay_addr) as rch,
        AsyncBus(bus_addr) as lib,
    ):
        b, r = bus_pb2_grpc.BusStub(bch), bus_pb2_grpc.BusStub(rch)
        plan = {
            "relay1": lambda: stream_one(r, "relay, 1 in flight"),
            "ours1": lambda: stream_one(b, "mmiobus, 1 in flight"),
            "ours1 lib": lambda: library(lib, "mmiobus, 1 in flight (AsyncStream)", 1),
            "relay64": lambda: stream_many(r, "relay, 64 in flight", 64),
            "ours64": lambda: library(lib, "mmiobus, 64 in flight (AsyncStream)", 64),
        }
        samples: dict[str, list[Row]] = {k: [] for k in plan}
        for _ in range(ROUNDS):
            for key, run in plan.items():
                samples[key].append(await run())
    return samples


def main() -> list[str]:
    lines = [
        f"forwarded MMIO: 4-byte reads client -> server -> device process; median of {ROUNDS} "
        "alternating rounds",
        f"  {'row':<46}{'ops/s':>12}{'p50 us':>10}{'p99 us':>10}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        machine = Path(tmp) / "bench.yaml"
        machine.write_text(MACHINE)
        procs = []
        try:
            bus, bus_addrs = _start(
                [
                    MMIOBUS,
                    "serve",
                    "--config",
                    str(machine),
                    "--listen",
                    "127.0.0.1:0",
                    "--listen",
                    f"unix:{tmp}/b.sock",
                ]
            )
            procs.append(bus)
            dev = subprocess.Popen(
                [
                    MMIOBUS,
                    "device",
                    "run",
                    "mmiobus.devices.models.scratch:ScratchRam",
                    "--server",
                    bus_addrs[0],
                    "--claim",
                    "dev",
                    "--name",
                    "bench",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            procs.append(dev)
            assert dev.stdout is not None and "serving" in dev.stdout.readline()
            relay, relay_addrs = _start(
                [sys.executable, str(HERE / "relay.py"), "serve", "127.0.0.1:0"], lines=1
            )
            procs.append(relay)
            rdev = subprocess.Popen(
                [sys.executable, str(HERE / "relay.py"), "device", relay_addrs[0]],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            procs.append(rdev)
            assert rdev.stdout is not None and "serving" in rdev.stdout.readline()
            import uvloop

            samples = uvloop.run(_measure(bus_addrs[0], relay_addrs[0]))
        finally:
            for p in reversed(procs):
                _stop(p)
    rows = {k: _median(v) for k, v in samples.items()}
    for row in rows.values():
        lines.append(f"  {row.name:<46}{row.ops:>12,.0f}{row.p50:>10,.0f}{row.p99:>10,.0f}")

    def paired(ours: str, base: str) -> float:
        return statistics.median(
            o.ops / b.ops for o, b in zip(samples[ours], samples[base], strict=True)
        )

    lines.append("  ratios: median over rounds of (mmiobus / relay) measured in the same round")
    lines.append(
        f"    {'1 in flight / relay:':<35}{_verdict(paired('ours1', 'relay1'), 0.8)}"
        f"  (through AsyncStream: {paired('ours1 lib', 'relay1'):.2f}x)"
    )
    lines.append(
        f"    {'64 in flight / relay at 64:':<35}{_verdict(paired('ours64', 'relay64'), 1.2)}"
    )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
