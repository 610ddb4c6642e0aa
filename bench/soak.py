"""Soak benchmark: mixed clients and devices against one `mmiobus serve` for a minute, checking
every answer.

Clients (asyncio, each on a channel of its own) run side by side: ``Rw`` writes read back,
``RwBatch`` batches of writes then reads, ``RwStream`` pipelined writes and reads, accesses to
two device processes (the scratch RAM model) through their windows, writers and readers of
shared 8-byte words (every word written is one byte repeated: a read that sees two different
bytes in a word is torn), a trace subscriber, and a device that comes and goes. Each client
owns its memory and knows what it last wrote there: every read is checked ("lost" counts reads
that did not return it).

Figures: operations and p50/p99 latency per kind, the integrity counts, and the server's memory
before and after. Targets: nothing lost, nothing torn, no failed call.

    python3 dev.py bench soak                  # 60 s
    MMIOBUS_SOAK_SECONDS=10 python3 dev.py bench soak
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from network import MMIOBUS, _start, _stop

SECONDS = float(os.environ.get("MMIOBUS_SOAK_SECONDS", "60"))
SLOT = 0x1000  # bytes of RAM each client owns
SHARED = 0x80_0000  # the shared words
SHARED_WORDS = 64
DEVICE_WINDOWS = {"dev0": 0x1000_0000, "dev1": 0x1001_0000}
DEVICE_SLOT = 0x100

MACHINE = """\
address_spaces: [{name: memory, root: system}]
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 16M}
      - {name: dev0, kind: mmio, addr: 0x10000000, size: 0x1000, device: dev0,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}, endianness: little}
      - {name: dev1, kind: mmio, addr: 0x10010000, size: 0x1000, device: dev1,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}, endianness: little}
      - {name: flicker, kind: mmio, addr: 0x10020000, size: 0x1000, device: flicker,
         absent: error, valid: {min: 1, max: 8}, impl: {min: 1, max: 8}, endianness: little}
"""


@dataclass
class Tally:
    """What one kind of client did."""

    ops: int = 0
    latencies: list[float] = field(default_factory=list)
    checks: int = 0
    lost: int = 0
    torn: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < 3:
            self.notes.append(text)


TALLIES: dict[str, Tally] = {}


def tally(kind: str) -> Tally:
    return TALLIES.setdefault(kind, Tally())


async def _loop(kind: str, until: float, step: Callable[[Tally], Awaitable[None]]) -> None:
    t = tally(kind)
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            await step(t)
        except grpc.aio.AioRpcError as e:
            t.failed += 1
            t.note(f"{e.code().name}: {e.details()}")
            await asyncio.sleep(0.01)
            continue
        t.latencies.append(time.perf_counter() - start)
        t.ops += 1


def _check(t: Tally, got: bytes, expected: bytes, what: str) -> None:
    t.checks += 1
    if got != expected:
        t.lost += 1
        t.note(f"{what}: read {got[:8].hex()}..., expected {expected[:8].hex()}...")


async def rw_client(address: str, n: int, until: float) -> None:
    """Writes a random block of its slot and reads it back."""
    rng = random.Random(n)
    base = n * SLOT
    async with grpc.aio.insecure_channel(address) as ch:
        stub = bus_pb2_grpc.BusStub(ch)

        async def step(t: Tally) -> None:
            off = rng.randrange(0, SLOT - 64)
            data = rng.randbytes(rng.choice((1, 4, 8, 64)))
            w = await stub.Rw(pb.RwRequest(addr=base + off, write=data))
            r = await stub.Rw(pb.RwRequest(addr=base + off, read=len(data)))
            if w.result or r.result:
                t.failed += 1
            _check(t, r.data, data, f"Rw {base + off:#x}")

        await _loop("Rw write, read back", until, step)


async def batch_client(address: str, n: int, until: float) -> None:
    """A batch of 64 writes across its slot, then a batch reading them all."""
    rng = random.Random(n)
    base = n * SLOT
    async with grpc.aio.insecure_channel(address) as ch:
        stub = bus_pb2_grpc.BusStub(ch)

        async def step(t: Tally) -> None:
            words = {base + 8 * rng.randrange(SLOT // 8): rng.randbytes(8) for _ in range(64)}
            writes = [pb.RwRequest(addr=a, write=d) for a, d in words.items()]
            await stub.RwBatch(pb.RwBatchRequest(accesses=writes))
            reads = [pb.RwRequest(id=i, addr=a, read=8) for i, a in enumerate(words)]
            reply = await stub.RwBatch(pb.RwBatchRequest(accesses=reads))
            for (addr, data), result in zip(words.items(), reply.results, strict=True):
                _check(t, result.data, data, f"RwBatch {addr:#x}")

        await _loop("RwBatch 64 writes, 64 reads", until, step)


async def stream_client(address: str, n: int, until: float) -> None:
    """One RwStream: messages of a write and a read of the same word, 8 messages in flight."""
    rng = random.Random(n)
    base = n * SLOT
    t = tally("RwStream write+read, 8 in flight")
    async with grpc.aio.insecure_channel(address) as ch:
        call = bus_pb2_grpc.BusStub(ch).RwStream()
        sent: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(maxsize=8)

        async def writer() -> None:
            i = 0
            while time.monotonic() < until:
                addr = base + 8 * rng.randrange(SLOT // 8)
                data = rng.randbytes(8)
                await sent.put((time.perf_counter(), data))
                await call.write(
                    pb.RwStreamRequest(
                        accesses=[
                            pb.RwRequest(id=2 * i, addr=addr, write=data),
                            pb.RwRequest(id=2 * i + 1, addr=addr, read=8),
                        ]
                    )
                )
                i += 1
            await sent.put(None)
            await call.done_writing()

        async def reader() -> None:
            while (item := await sent.get()) is not None:
                start, data = item
                reply = await call.read()
                t.latencies.append(time.perf_counter() - start)
                t.ops += 1
                _check(t, reply.results[1].data, data, "RwStream")

        try:
            await asyncio.gather(writer(), reader())
        except grpc.aio.AioRpcError as e:
            t.failed += 1
            t.note(f"{e.code().name}: {e.details()}")


async def device_client(address: str, n: int, until: float) -> None:
    """Writes and reads back its part of a device window (a scratch RAM in another process)."""
    rng = random.Random(n)
    window = list(DEVICE_WINDOWS.values())[n % len(DEVICE_WINDOWS)]
    base = window + (n // len(DEVICE_WINDOWS)) * DEVICE_SLOT
    async with grpc.aio.insecure_channel(address) as ch:
        stub = bus_pb2_grpc.BusStub(ch)

        async def step(t: Tally) -> None:
            off = 8 * rng.randrange(DEVICE_SLOT // 8)
            data = rng.randbytes(rng.choice((1, 2, 4, 8)))
            await stub.Rw(pb.RwRequest(addr=base + off, write=data))
            r = await stub.Rw(pb.RwRequest(addr=base + off, read=len(data)))
            if r.result:
                t.failed += 1
                t.note(f"device read {base + off:#x}: result {r.result}")
            _check(t, r.data, data, f"device {base + off:#x}")

        await _loop("device window write, read back", until, step)


async def word_writer(address: str, n: int, until: float) -> None:
    rng = random.Random(n)
    async with grpc.aio.insecure_channel(address) as ch:
        stub = bus_pb2_grpc.BusStub(ch)

        async def step(t: Tally) -> None:
            word = rng.randrange(SHARED_WORDS)
            await stub.Rw(
                pb.RwRequest(addr=SHARED + 8 * word, write=bytes([rng.randrange(256)]) * 8)
            )

        await _loop("shared words: write", until, step)


async def word_reader(address: str, n: int, until: float) -> None:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = bus_pb2_grpc.BusStub(ch)

        async def step(t: Tally) -> None:
            r = await stub.Rw(pb.RwRequest(addr=SHARED, read=8 * SHARED_WORDS))
            for i in range(0, len(r.data), 8):
                t.checks += 1
                if len(set(r.data[i : i + 8])) != 1:
                    t.torn += 1
                    t.note(f"torn word at {SHARED + i:#x}: {r.data[i : i + 8].hex()}")

        await _loop("shared words: read, check", until, step)


async def tracer(address: str, until: float) -> None:
    """A trace subscriber of the device windows, draining as it goes."""
    t = tally("trace events received")
    async with grpc.aio.insecure_channel(address) as ch:
        call = bus_pb2_grpc.BusStub(ch).Trace(pb.TraceRequest(regions=["dev*"]))
        try:
            while time.monotonic() < until:
                batch = await asyncio.wait_for(
                    call.read(), timeout=max(0.1, until - time.monotonic())
                )
                t.ops += len(batch.events)
        except TimeoutError:
            pass
        finally:
            call.cancel()


def device(address: str, name: str) -> subprocess.Popen[str]:
    cmd = [MMIOBUS, "device", "run", "mmiobus.devices.models.scratch:ScratchRam",
           "--claim", name, "--server", address]  # fmt: skip
    with open(os.environ.get("MMIOBUS_BENCH_LOG", os.devnull), "a") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line or "serving" in line:
            break
    return proc


async def flicker(address: str, until: float) -> None:
    """A device that attaches, serves for a moment and leaves, over and over."""
    t = tally("device attach/leave cycles")
    while time.monotonic() < until - 1:
        proc = await asyncio.to_thread(device, address, "flicker")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(_stop, proc)
        t.ops += 1


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def soak(address: str) -> None:
    until = time.monotonic() + SECONDS
    workers: list[Awaitable[None]] = []
    n = 0
    for make, count in (
        (rw_client, 8),
        (batch_client, 4),
        (stream_client, 4),
        (device_client, 8),
        (word_writer, 4),
        (word_reader, 4),
    ):
        for _ in range(count):
            workers.append(make(address, n, until))
            n += 1
    workers.append(tracer(address, until))
    workers.append(flicker(address, until))
    await asyncio.gather(*workers)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def main() -> list[str]:
    TALLIES.clear()
    with tempfile.TemporaryDirectory() as tmp:
        machine = Path(tmp) / "soak.yaml"
        machine.write_text(MACHINE)
        serve = [MMIOBUS, "serve", "--config", str(machine), "--listen", "127.0.0.1:0"]
        server, addresses = _start([*serve, "--device-deadline", "5000"], lines=1)
        address = addresses[0]
        devices = [device(address, name) for name in DEVICE_WINDOWS]
        try:
            before = rss_mib(server.pid) if sys.platform == "linux" else 0.0
            started = time.perf_counter()
            asyncio.run(soak(address))
            elapsed = time.perf_counter() - started
            after = rss_mib(server.pid) if sys.platform == "linux" else 0.0
        finally:
            for proc in devices:
                _stop(proc)
            _stop(server)
    lines = [
        f"soak: mixed clients and devices for {elapsed:.0f} s against one server "
        f"(MMIOBUS_SOAK_SECONDS={SECONDS:g})",
        f"  {'kind':<36}{'ops':>10}{'ops/s':>10}{'p50 us':>10}{'p99 us':>10}{'failed':>8}",
    ]
    checks = lost = torn = failed = 0
    for kind, t in TALLIES.items():
        lat = sorted(t.latencies)
        p50 = statistics.median(lat) if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
        lines.append(
            f"  {kind:<36}{t.ops:>10,}{t.ops / elapsed:>10,.0f}"
            f"{_ms(p50) if lat else '-':>10}{_ms(p99) if lat else '-':>10}{t.failed:>8}"
        )
        checks, lost, torn, failed = (
            checks + t.checks,
            lost + t.lost,
            torn + t.torn,
            failed + t.failed,
        )
    lines.append(
        f"  integrity: {checks:,} reads checked, {lost} lost, {torn} torn, {failed} failed calls "
        f"(target 0, 0, 0: {'met' if not (lost or torn or failed) else 'MISSED'})"
    )
    if sys.platform == "linux":
        lines.append(f"  server memory (VmRSS): {before:.0f} MiB before, {after:.0f} MiB after")
    for kind, t in TALLIES.items():
        for note in t.notes:
            lines.append(f"  ! {kind}: {note}")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
