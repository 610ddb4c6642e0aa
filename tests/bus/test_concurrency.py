"""Concurrent clients on one bus: client processes and asyncio tasks on the same RAM.

Accesses from different clients interleave at access granularity: a single RAM access never
tears, a stream sees its own accesses in order, and writes to disjoint addresses are never lost.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from mmiobus.client import AsyncBus, Read

TIMEOUT = 120  # seconds; only to turn a hang into a failure

# A client process: writes an 8-byte word whose bytes all equal VALUE, COUNT times, by MODE.
WRITER = r"""
import sys
from mmiobus.client import Bus, Write

address, addr, value, count, mode = sys.argv[1:]
addr, value, count = int(addr), int(value), int(count)
word = bytes([value]) * 8
with Bus(address) as bus:
    if mode == "stream":
        with bus.stream() as s:
            futures = [s.write(addr, word) for _ in range(count)]
            for f in futures:
                f.result()
    elif mode == "batch":
        for _ in range(count // 25):
            bus.batch([Write(addr, word)] * 25)
    else:
        for _ in range(count // 10):
            bus.write(addr, word)
print("wrote", count, flush=True)
"""

# A client process: reads the word ROUNDS times in batches of 50; prints each distinct value.
READER = r"""
import sys
from mmiobus.client import Bus, Read

address, addr, rounds = sys.argv[1:]
seen = set()
with Bus(address) as bus:
    for _ in range(int(rounds)):
        seen.update(bus.batch([Read(int(addr), 8)] * 50))
print(" ".join(sorted(word.hex() for word in seen)), flush=True)
"""

# A client process: writes the words of one writer (every other word of a block), ROUNDS times,
# each word holding (writer, round, index), in small batches.
INTERLEAVER = r"""
import sys
from mmiobus.client import Bus, Write

address, base, writer, words, rounds = sys.argv[1:]
base, writer, words, rounds = int(base), int(writer), int(words), int(rounds)
with Bus(address) as bus:
    for r in range(rounds):
        mine = [
            Write(base + 8 * i, bytes([writer, r]) + i.to_bytes(6, "little"))
            for i in range(writer, words, 2)
        ]
        for start in range(0, len(mine), 16):
            bus.batch(mine[start : start + 16])
        bus.write(base + 8 * writer, bytes([writer, r]) + writer.to_bytes(6, "little"))
print("done", flush=True)
"""


async def run_client(script: str, *args: object) -> str:
    """Run a client process to completion; returns its output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *map(str, args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()
    return out.decode()


def untorn(word: bytes) -> bool:
    return len(word) == 8 and len(set(word)) == 1


@pytest.fixture
def addresses(shared_server) -> list[str]:
    return shared_server.addresses


async def test_concurrent_writers_never_tear_a_word_for_readers(addresses):
    """Writer processes and asyncio tasks write 8-byte words of equal bytes to the same address
    while asyncio readers (unary, stream and batch) and a reader process read it: every word
    read has 8 equal bytes, always one a writer wrote."""
    addr = 0x30000
    initial = 0xEE
    modes = ["stream", "batch", "rw"]
    process_writers = [(addresses[k % 2], 0x10 + k, mode) for k, mode in enumerate(modes)]
    task_writers = [0x20, 0x21]
    allowed = {initial, *(v for _a, v, _m in process_writers), *task_writers}
    seen: list[bytes] = []
    stop = asyncio.Event()
    started = [asyncio.Event() for _ in range(3)]

    async with AsyncBus(addresses[0]) as bus:
        await bus.write(addr, bytes([initial]) * 8)

    async def unary_reader(address: str, ready: asyncio.Event) -> None:
        async with AsyncBus(address) as bus:
            while not stop.is_set():
                seen.append(await bus.read(addr, 8))
                ready.set()

    async def stream_reader(address: str, ready: asyncio.Event) -> None:
        async with AsyncBus(address) as bus, bus.stream() as s:
            while not stop.is_set():
                seen.extend(await asyncio.gather(*(s.read(addr, 8) for _ in range(50))))
                ready.set()

    async def batch_reader(address: str, ready: asyncio.Event) -> None:
        async with AsyncBus(address) as bus:
            while not stop.is_set():
                seen.extend(await bus.batch([Read(addr, 8)] * 50))
                ready.set()

    async def task_writer(address: str, value: int) -> None:
        async with AsyncBus(address) as bus, bus.stream() as s:
            await asyncio.gather(*(s.write(addr, bytes([value]) * 8) for _ in range(500)))

    async def scenario() -> None:
        readers = [
            asyncio.create_task(unary_reader(addresses[0], started[0])),
            asyncio.create_task(stream_reader(addresses[1], started[1])),
            asyncio.create_task(batch_reader(addresses[0], started[2])),
        ]
        await asyncio.gather(*(e.wait() for e in started))
        reader_output = run_client(READER, addresses[1], addr, 100)
        *_, output = await asyncio.gather(
            *(run_client(WRITER, a, addr, v, 600, mode) for a, v, mode in process_writers),
            *(task_writer(addresses[k % 2], v) for k, v in enumerate(task_writers)),
            reader_output,
        )
        seen.extend(bytes.fromhex(word) for word in output.split())
        stop.set()
        await asyncio.gather(*readers)

    await asyncio.wait_for(scenario(), TIMEOUT)
    torn = [w for w in seen if not untorn(w)]
    assert torn == []
    assert {w[0] for w in seen} <= allowed
    async with AsyncBus(addresses[0]) as bus:
        last = await bus.read(addr, 8)
    assert untorn(last) and last[0] in allowed - {initial}


async def test_each_stream_reads_back_its_own_counter_in_order(addresses):
    """Several streams at once, each pipelining write(i) then read for i = 0, 1, 2, ... on its
    own word: every read returns the i written just before it."""
    rounds = 400

    async def counter_stream(address: str, addr: int) -> list[int]:
        async with AsyncBus(address) as bus, bus.stream() as s:
            reads = []
            for i in range(rounds):
                s.write(addr, i.to_bytes(8, "little"))
                reads.append(s.read(addr, 8))
            return [int.from_bytes(data, "little") for data in await asyncio.gather(*reads)]

    results = await asyncio.wait_for(
        asyncio.gather(*(counter_stream(addresses[k % 2], 0x31000 + 8 * k) for k in range(6))),
        TIMEOUT,
    )
    assert results == [list(range(rounds))] * 6


async def test_two_client_processes_interleave_without_losing_writes(addresses):
    """Two processes write alternate words of one block at the same time, round after round:
    afterwards every word holds its writer's last value (no write to a neighbour was lost)."""
    base, words, rounds = 0x32000, 256, 8
    async with AsyncBus(addresses[0]) as bus:
        await bus.write(base, bytes(8 * words))
    await asyncio.gather(
        run_client(INTERLEAVER, addresses[0], base, 0, words, rounds),
        run_client(INTERLEAVER, addresses[1], base, 1, words, rounds),
    )
    async with AsyncBus(addresses[0]) as bus:
        block = await bus.read(base, 8 * words)
    expected = b"".join(bytes([i % 2, rounds - 1]) + i.to_bytes(6, "little") for i in range(words))
    assert block == expected


async def test_asyncio_tasks_on_one_connection_interleave_without_losing_writes(addresses):
    """Many tasks sharing one connection, each writing its own words with unary calls: no write
    is lost or lands elsewhere."""
    base, tasks, per_task = 0x33000, 16, 20

    async with AsyncBus(addresses[1]) as bus:

        async def writer(t: int) -> None:
            for i in range(per_task):
                await bus.write(base + 8 * (t + tasks * i), bytes([t, i]) * 4)

        await asyncio.wait_for(asyncio.gather(*(writer(t) for t in range(tasks))), TIMEOUT)
        block = await bus.read(base, 8 * tasks * per_task)
    words = [block[8 * k : 8 * k + 8] for k in range(tasks * per_task)]
    assert words == [bytes([k % tasks, k // tasks]) * 4 for k in range(tasks * per_task)]
