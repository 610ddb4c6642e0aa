"""Network benchmark: 4-byte RAM reads through a real `mmiobus serve`, next to the raw gRPC
ceiling (bench/ceiling_server.py: the same message shapes with no bus behind them) measured in
the same run, over TCP and over a unix socket. Client and server share this machine, so read
the ratios, not the absolute rates.

Targets (issue "The bus on the network"):
  Rw >= 0.85x the empty unary RPC; RwStream one in flight >= 0.85x the empty stream round trip;
  RwStream with 64 in flight >= 20x Rw one in flight; RwBatch >= 0.8x the empty batch RPC and
  >= 100,000 accesses/s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from mmiobus.client import AsyncBus
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc

HERE = Path(__file__).resolve().parent
MMIOBUS = str(Path(sys.executable).with_name("mmiobus"))
DURATION = float(os.environ.get("MMIOBUS_BENCH_SECONDS", "2.0"))
BATCH = 1000
ADDR = 0x1000


@dataclass
class Row:
    name: str
    ops: float  # operations (accesses) per second
    p50: float  # microseconds per call
    p99: float


def _stats(name: str, ops: int, elapsed: float, latencies: list[float], per_call: int = 1) -> Row:
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
    return Row(name, ops / elapsed, statistics.median(lat) * 1e6 if lat else 0, p99 * 1e6)


async def _timed(call: Callable[[], Awaitable[object]], inflight: int, per_call: int = 1):
    """Run ``call`` from ``inflight`` concurrent workers for DURATION seconds."""
    latencies: list[float] = []
    done = 0
    stop_at = time.perf_counter() + DURATION

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t)
            done += per_call

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return done, time.perf_counter() - start, latencies


def _read(i: int = 0) -> pb.RwRequest:
    return pb.RwRequest(id=i, addr=ADDR, read=4)


async def unary(stub: bus_pb2_grpc.BusStub, name: str, inflight: int) -> Row:
    await stub.Rw(_read())
    done, elapsed, lat = await _timed(lambda: stub.Rw(_read()), inflight)
    return _stats(name, done, elapsed, lat)


async def raw_stream(stub: bus_pb2_grpc.BusStub, name: str) -> Row:
    call = stub.RwStream()
    message = pb.RwStreamRequest(accesses=[_read()])

    async def round_trip() -> None:
        await call.write(message)
        await call.read()

    await round_trip()
    done, elapsed, lat = await _timed(round_trip, 1)
    await call.done_writing()
    return _stats(name, done, elapsed, lat)


async def batch(stub: bus_pb2_grpc.BusStub, name: str) -> Row:
    async def one() -> None:
        await stub.RwBatch(pb.RwBatchRequest(accesses=[_read(i) for i in range(BATCH)]))

    await one()
    done, elapsed, lat = await _timed(one, 1, per_call=BATCH)
    return _stats(name, done, elapsed, lat)


async def library_stream(address: str, name: str, inflight: int) -> Row:
    async with AsyncBus(address) as bus, bus.stream() as s:
        await s.read(ADDR, 4)
        done, elapsed, lat = await _timed(lambda: s.read(ADDR, 4), inflight)
    return _stats(name, done, elapsed, lat)


async def library_read(address: str, name: str) -> Row:
    async with AsyncBus(address) as bus:
        await bus.read(ADDR, 4)
        done, elapsed, lat = await _timed(lambda: bus.read(ADDR, 4), 1)
    return _stats(name, done, elapsed, lat)


async def library_batch(address: str, name: str) -> Row:
    from mmiobus.client import Read

    async with AsyncBus(address) as bus:
        accesses = [Read(ADDR, 4)] * BATCH
        done, elapsed, lat = await _timed(lambda: bus.batch(accesses), 1, per_call=BATCH)
    return _stats(name, done, elapsed, lat)


def _start(cmd: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addresses = []
    assert proc.stdout is not None
    while len(addresses) < 2:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{cmd[0]} exited before listening")
        if "listening on" in line:
            addresses.append(line.split()[-1])
    return proc, addresses


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _measure(ceiling: str, bus: str) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    async with grpc.aio.insecure_channel(ceiling) as ch:
        stub = bus_pb2_grpc.BusStub(ch)
        rows["empty unary"] = await unary(stub, "ceiling: empty unary RPC", 1)
        rows["empty stream"] = await raw_stream(stub, "ceiling: empty stream round trip")
        rows["empty batch"] = await batch(stub, f"ceiling: empty batch RPC ({BATCH})")
    async with grpc.aio.insecure_channel(bus) as ch:
        stub = bus_pb2_grpc.BusStub(ch)
        rows["rw1"] = await unary(stub, "Rw, 1 in flight", 1)
        rows["rw64"] = await unary(stub, "Rw, 64 in flight", 64)
        rows["stream1 raw"] = await raw_stream(stub, "RwStream, 1 in flight (raw stub)")
        rows["batch"] = await batch(stub, f"RwBatch of {BATCH} reads")
    rows["stream1"] = await library_stream(bus, "RwStream, 1 in flight (AsyncStream)", 1)
    rows["stream64"] = await library_stream(bus, "RwStream, 64 in flight (AsyncStream)", 64)
    rows["lib read"] = await library_read(bus, "AsyncBus.read, 1 in flight")
    rows["lib batch"] = await library_batch(bus, f"AsyncBus.batch of {BATCH} reads")
    return rows


def _verdict(value: float, target: float) -> str:
    return f"{value:.2f}x (target >= {target}x: {'met' if value >= target else 'MISSED'})"


def main() -> list[str]:
    lines = [
        f"network: 4-byte RAM reads, {DURATION:g} s per row; client and server share this machine",
        f"  {'transport':<10}{'row':<42}{'ops/s':>12}{'p50 us':>10}{'p99 us':>10}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        bus_proc, bus_addrs = _start(
            [MMIOBUS, "serve", "--listen", "127.0.0.1:0", "--listen", f"unix:{tmp}/bus.sock"]
        )
        ceil_proc, ceil_addrs = _start(
            [sys.executable, str(HERE / "ceiling_server.py"), "127.0.0.1:0", f"unix:{tmp}/c.sock"]
        )
        try:
            import uvloop

            results = {}
            for transport, i in (("tcp", 0), ("unix", 1)):
                results[transport] = uvloop.run(_measure(ceil_addrs[i], bus_addrs[i]))
        finally:
            _stop(bus_proc)
            _stop(ceil_proc)
    for transport, rows in results.items():
        for row in rows.values():
            lines.append(
                f"  {transport:<10}{row.name:<42}{row.ops:>12,.0f}{row.p50:>10,.0f}{row.p99:>10,.0f}"
            )
    for transport, r in results.items():
        lines.append(f"  {transport}:")
        lines.append(
            f"    Rw / empty unary:                  {_verdict(r['rw1'].ops / r['empty unary'].ops, 0.85)}"
        )
        lines.append(
            f"    RwStream 1 / empty stream:         {_verdict(r['stream1'].ops / r['empty stream'].ops, 0.85)}"
            f"  (raw stub: {r['stream1 raw'].ops / r['empty stream'].ops:.2f}x)"
        )
        lines.append(
            f"    RwStream 64 / Rw 1:                {_verdict(r['stream64'].ops / r['rw1'].ops, 20)}"
        )
        lines.append(
            f"    RwBatch / empty batch:             {_verdict(r['batch'].ops / r['empty batch'].ops, 0.8)}"
        )
        ok = r["batch"].ops >= 100_000
        lines.append(
            f"    RwBatch accesses/s:                {r['batch'].ops:,.0f} (target >= 100,000: {'met' if ok else 'MISSED'})"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
