"""`Bus.RwStream` on the wire: pipelined messages of accesses, answered in order.

Most tests drive the raw asyncio stub so that they control exactly which messages go out and
when replies are read.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import grpc
import pytest
from mmiobus.client import AsyncBus, RpcFailure
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.servers import ServerFactory, ServerProcess
from support.stubs import aio_bus_stub

HOLE = 0x20000000
MAX_ACCESSES = 6
MAX_BYTES = 100


@pytest.fixture(scope="module")
def limited_server(machine_server: ServerFactory) -> ServerProcess:
    """A server with small per-message limits."""
    return machine_server(
        None, "--max-batch-accesses", str(MAX_ACCESSES), "--max-batch-bytes", str(MAX_BYTES)
    )


@pytest.fixture
async def limited_stub(limited_server: ServerProcess) -> AsyncIterator[bus_pb2_grpc.BusStub]:
    async with aio_bus_stub(limited_server.tcp) as stub:
        yield stub


def message(*accesses: pb.RwRequest) -> pb.RwStreamRequest:
    return pb.RwStreamRequest(accesses=accesses)


def read(rid: int, addr: int, n: int) -> pb.RwRequest:
    return pb.RwRequest(id=rid, addr=addr, read=n)


def write(rid: int, addr: int, data: bytes) -> pb.RwRequest:
    return pb.RwRequest(id=rid, addr=addr, write=data)


async def replies(call) -> list[pb.RwStreamResponse]:
    """Every reply until the server ends the stream (raising if it ends with an error)."""
    out = []
    while (reply := await call.read()) is not grpc.aio.EOF:
        out.append(reply)
    return out


async def send_all(stub, *messages: pb.RwStreamRequest) -> list[pb.RwStreamResponse]:
    """Write every message before reading any reply, then collect the replies."""
    call = stub.RwStream(timeout=10)
    for m in messages:
        await call.write(m)
    await call.done_writing()
    return await replies(call)


def has_number(text: str, n: int) -> bool:
    return re.search(rf"\b{n}\b", text) is not None


# -- replies ---------------------------------------------------------------------------------


async def test_one_message_with_several_accesses_gets_one_reply_in_order(aio_stub):
    """A message of several accesses is answered by one message with one result per access, in
    the order of the accesses, each tagged with its access's id."""
    out = await send_all(
        aio_stub,
        message(
            write(11, 0x10000, b"\x01\x02"),
            read(7, 0x10000, 2),
            read(42, HOLE, 3),
            write(3, 0x10002, b"\x03"),
            read(19, 0x10000, 3),
        ),
    )
    assert len(out) == 1
    results = out[0].results
    assert [r.id for r in results] == [11, 7, 42, 3, 19]
    assert results[1].data == b"\x01\x02"
    assert (results[2].data, results[2].result) == (bytes(3), pb.MEMTX_DECODE_ERROR)
    assert results[4].data == b"\x01\x02\x03"


async def test_pipelined_messages_are_answered_in_order(aio_stub):
    """Many messages written before any reply is read are answered one reply each, in order."""
    messages = [
        message(*(read(100 * m + k, 0x11000 + 8 * k, 8) for k in range(1 + m % 3)))
        for m in range(25)
    ]
    out = await send_all(aio_stub, *messages)
    assert [[r.id for r in reply.results] for reply in out] == [
        [a.id for a in m.accesses] for m in messages
    ]


async def test_empty_message_gets_an_empty_reply(aio_stub):
    """A message with no accesses is still answered, with no results."""
    out = await send_all(aio_stub, message(), message(read(5, 0x11800, 1)))
    assert [len(r.results) for r in out] == [0, 1]


async def test_stream_can_be_used_interactively(aio_stub):
    """Replies come as messages are sent: each write can wait for its own reply."""
    call = aio_stub.RwStream(timeout=10)
    for k in range(5):
        await call.write(message(write(2 * k, 0x11900, bytes([k])), read(2 * k + 1, 0x11900, 1)))
        reply = await call.read()
        assert reply.results[1].data == bytes([k])
    await call.done_writing()
    assert await replies(call) == []


# -- order -----------------------------------------------------------------------------------


async def test_accesses_in_one_message_run_in_order(aio_stub):
    """Write, read, write, read of one address in one message: each read sees the write before
    it."""
    out = await send_all(
        aio_stub,
        message(
            write(1, 0x12000, b"first!"),
            read(2, 0x12000, 6),
            write(3, 0x12000, b"second"),
            read(4, 0x12000, 6),
        ),
    )
    results = out[0].results
    assert (results[1].data, results[3].data) == (b"first!", b"second")


async def test_pipelined_messages_run_in_order(aio_stub):
    """A read in message k sees the write of message k-1 to the same address."""
    messages = [
        message(read(2 * k, 0x12100, 4), write(2 * k + 1, 0x12100, b"%04d" % k)) for k in range(30)
    ]
    out = await send_all(aio_stub, message(write(999, 0x12100, b"init")), *messages)
    seen = [reply.results[0].data for reply in out[1:]]
    assert seen == [b"init"] + [b"%04d" % k for k in range(29)]


# -- malformed messages ----------------------------------------------------------------------


async def test_malformed_access_aborts_stream_naming_message_and_index(aio_stub):
    """An access with neither read nor write in message 3 ends the stream with INVALID_ARGUMENT
    naming message 3 and the access's index, after the replies to messages 0-2 arrived."""
    good = [
        message(write(10 * m, 0x13000 + m, bytes([m])), read(10 * m + 1, 0x13000, 4))
        for m in range(3)
    ]
    bad = message(read(30, 0x13000, 1), pb.RwRequest(id=31, addr=0x13000), read(32, 0x13000, 1))
    call = aio_stub.RwStream(timeout=10)
    for m in [*good, bad]:
        await call.write(m)
    received = [await call.read() for _ in good]
    assert [[r.id for r in reply.results] for reply in received] == [
        [a.id for a in m.accesses] for m in good
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message 3" in info.value.details()
    assert "accesses[1]" in info.value.details()


async def test_malformed_message_runs_none_of_its_accesses(aio_stub):
    """A message with one malformed access is refused whole: its valid accesses before the bad
    one do not run."""
    out = await send_all(aio_stub, message(write(1, 0x13100, b"old")))
    assert out[0].results[0].result == pb.MEMTX_OK
    call = aio_stub.RwStream(timeout=10)
    await call.write(message(write(2, 0x13100, b"new"), pb.RwRequest(id=3, addr=0x13100)))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await replies(call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    out = await send_all(aio_stub, message(read(4, 0x13100, 3)))
    assert out[0].results[0].data == b"old"


async def test_message_that_does_not_parse_aborts_stream_with_invalid_argument(address):
    """Bytes that are not an RwStreamRequest end the stream with INVALID_ARGUMENT, after the
    reply to the message before them."""
    async with grpc.aio.insecure_channel(address) as channel:
        raw = channel.stream_stream(
            "/mmiobus.v1.Bus/RwStream", response_deserializer=pb.RwStreamResponse.FromString
        )
        call = raw(timeout=10)
        await call.write(message(read(1, 0x13200, 1)).SerializeToString())
        await call.write(b"\x0a\x05ab")  # accesses: 5 bytes announced, 2 sent
        assert [r.id for r in (await call.read()).results] == [1]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "RwStreamRequest" in info.value.details()


async def test_unknown_address_space_aborts_stream_with_not_found(aio_stub):
    """An access naming an address space the machine lacks ends the stream with NOT_FOUND
    naming the id."""
    call = aio_stub.RwStream(timeout=10)
    await call.write(message(pb.RwRequest(id=1, addr=0, read=1, address_space="nowhere")))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await replies(call)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nowhere" in info.value.details()


# -- limits ----------------------------------------------------------------------------------


async def test_message_with_too_many_accesses_is_resource_exhausted(limited_stub):
    """A message with more accesses than --max-batch-accesses ends the stream with
    RESOURCE_EXHAUSTED naming the option, the count and the limit."""
    call = limited_stub.RwStream(timeout=10)
    await call.write(message(read(0, 0x100, 1)))
    n = MAX_ACCESSES + 1
    await call.write(message(*(read(k, 0x100, 1) for k in range(n))))
    assert len((await call.read()).results) == 1
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    details = info.value.details()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-batch-accesses" in details
    assert has_number(details, n) and has_number(details, MAX_ACCESSES)
    assert "message 1" in details


async def test_message_with_too_many_bytes_is_resource_exhausted(limited_stub):
    """A message reading and writing more than --max-batch-bytes in total ends the stream with
    RESOURCE_EXHAUSTED naming the option, the total and the limit."""
    accesses = [read(1, 0x100, 40), write(2, 0x200, bytes(40)), read(3, 0x300, 40)]
    call = limited_stub.RwStream(timeout=10)
    await call.write(message(*accesses))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await replies(call)
    details = info.value.details()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-batch-bytes" in details
    assert has_number(details, 120) and has_number(details, MAX_BYTES)


async def test_limits_apply_per_message_not_per_stream(limited_stub):
    """Messages each at the limits are all answered, however much the stream carries in total."""
    per_access = MAX_BYTES // MAX_ACCESSES
    full = [
        message(*(read(m * 100 + k, 0x400 + k, per_access) for k in range(MAX_ACCESSES)))
        for m in range(10)
    ]
    out = await send_all(limited_stub, *full)
    assert [len(r.results) for r in out] == [MAX_ACCESSES] * 10
    assert all(len(res.data) == per_access for r in out for res in r.results)


async def test_client_stream_keeps_its_messages_within_the_limits(limited_server):
    """The client groups pending accesses into messages the server accepts: many accesses in
    flight on a server with small per-message limits all get their answers, in order."""
    async with AsyncBus(limited_server.unix) as bus, bus.stream() as s:
        writes = [s.write(0x800 + 8 * k, b"%08d" % k) for k in range(60)]
        reads = [s.read(0x800 + 8 * k, 8) for k in range(60)]
        await s.flush()
    assert [w.result() for w in writes] == [None] * 60
    assert [r.result() for r in reads] == [b"%08d" % k for k in range(60)]


async def test_client_stream_raises_an_rpc_failure_when_the_server_ends_it(address):
    """When the server ends a stream with an error while the client is still sending, the
    client raises one of its RpcFailure exceptions, every time. (Accesses are issued a little
    apart so that they go out as separate messages while the server's status arrives.)"""
    errors: list[Exception] = []
    async with AsyncBus(address) as bus:
        for _ in range(40):
            futures = []
            try:
                async with bus.stream() as s:
                    futures.append(s.read(0x100, 1, address_space="no-such-space"))
                    for _ in range(300):
                        futures.append(s.read(0x1000, 8))
                        await asyncio.sleep(0.001)
            except Exception as e:
                errors.append(e)
            for f in futures:  # consumed, so that asyncio does not log them as never retrieved
                if f.done() and not f.cancelled():
                    f.exception()
    assert len(errors) == 40
    assert {f"{type(e).__name__}: {e}" for e in errors if not isinstance(e, RpcFailure)} == set()
