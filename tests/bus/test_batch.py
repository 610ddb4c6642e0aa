"""`Bus.RwBatch`: many accesses in one message, validated first, executed in order, and the
limits that bound a batch. The last tests drive the client's `Bus.batch`, which splits long
batches to fit the server's limits."""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import pytest
from mmiobus.client import Bus, BusFault, MemTxAttrs, MemTxResult, Read, Write
from mmiobus.server.config import REPLY_OVERHEAD
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.servers import ServerFactory, ServerProcess, start_server
from support.stubs import bus_stub

HOLE = 0x20000000
ROM = 0xFFFC0000

# The limited server: small batches, small accesses, room for a full batch in a message.
MAX_ACCESSES = 8
MAX_BYTES = 256
MAX_ACCESS = 64
MAX_MESSAGE = 1024


@pytest.fixture(scope="module")
def limited_server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(
        None,
        "--max-batch-accesses", str(MAX_ACCESSES),
        "--max-batch-bytes", str(MAX_BYTES),
        "--max-access-bytes", str(MAX_ACCESS),
        "--max-message-bytes", str(MAX_MESSAGE),
    )  # fmt: skip


@pytest.fixture
def limited_stub(limited_server: ServerProcess) -> Iterator[bus_pb2_grpc.BusStub]:
    with bus_stub(limited_server.tcp) as stub:
        yield stub


@pytest.fixture(scope="module")
def tight_server(machine_server: ServerFactory) -> ServerProcess:
    """Batch limits with the smallest message size the server accepts for them."""
    return machine_server(
        None,
        "--max-batch-accesses", str(MAX_ACCESSES),
        "--max-batch-bytes", str(MAX_BYTES),
        "--max-message-bytes", str(TIGHT_MESSAGE),
    )  # fmt: skip


# The documented minimum: the reply to a full batch must fit (server/service/limits.py).
TIGHT_MESSAGE = MAX_BYTES + REPLY_OVERHEAD * MAX_ACCESSES + 64


def test_server_refuses_a_message_limit_too_small_for_a_full_reply():
    """A --max-message-bytes below the reply to a full batch is refused at startup, naming the
    options and the minimum (instead of running batches whose replies cannot be sent)."""
    with pytest.raises(AssertionError) as info:
        start_server(
            "--max-batch-accesses", str(MAX_ACCESSES),
            "--max-batch-bytes", str(MAX_BYTES),
            "--max-message-bytes", str(TIGHT_MESSAGE - 1),
        )  # fmt: skip
    assert "--max-message-bytes" in str(info.value) and str(TIGHT_MESSAGE) in str(info.value)


def read(rid: int, addr: int, n: int, **kw) -> pb.RwRequest:
    return pb.RwRequest(id=rid, addr=addr, read=n, **kw)


def write(rid: int, addr: int, data: bytes, **kw) -> pb.RwRequest:
    return pb.RwRequest(id=rid, addr=addr, write=data, **kw)


def batch(stub, *accesses: pb.RwRequest) -> list[pb.RwResponse]:
    return list(stub.RwBatch(pb.RwBatchRequest(accesses=accesses), timeout=10).results)


def batch_error(stub, *accesses: pb.RwRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.RwBatch(pb.RwBatchRequest(accesses=accesses), timeout=10)
    return info.value


def has_number(text: str, n: int) -> bool:
    return re.search(rf"\b{n}\b", text) is not None


# -- order and results -----------------------------------------------------------------------


def test_accesses_run_in_order(stub):
    """Write, read, write, read of one address: each read sees the write just before it."""
    results = batch(
        stub,
        write(1, 0x20000, b"AAAA"),
        read(2, 0x20000, 4),
        write(3, 0x20000, b"BBBB"),
        read(4, 0x20000, 4),
    )
    assert [r.data for r in results] == [b"", b"AAAA", b"", b"BBBB"]


def test_results_come_one_per_access_in_order_with_their_ids(stub):
    """The reply has one result per access, in the accesses' order, each with its id."""
    ids = [9, 3, 2**64 - 1, 0, 77, 5]
    results = batch(stub, *(read(rid, 0x20100 + k, 1) for k, rid in enumerate(ids)))
    assert [r.id for r in results] == ids


def test_empty_batch_gets_no_results(stub):
    """A batch with no accesses is answered with no results."""
    assert batch(stub) == []


def test_faults_are_per_access_results_and_the_rest_still_run(stub):
    """A hole read and a ROM write fault on their own; the accesses around them still run."""
    results = batch(
        stub,
        write(0, 0x20200, b"before"),
        read(1, HOLE, 4),
        write(2, ROM, b"\xff\xff"),
        write(3, 0x20300, b"after"),
        read(4, 0x20200, 6),
        read(5, 0x20300, 5),
    )
    assert [r.result for r in results] == [
        pb.MEMTX_OK,
        pb.MEMTX_DECODE_ERROR,
        pb.MEMTX_DECODE_ERROR,
        pb.MEMTX_OK,
        pb.MEMTX_OK,
        pb.MEMTX_OK,
    ]
    assert results[1].data == bytes(4)
    assert (results[4].data, results[5].data) == (b"before", b"after")


# -- validation before execution -------------------------------------------------------------

BAD_ACCESSES = [
    pytest.param(pb.RwRequest(id=5, addr=0x20400), grpc.StatusCode.INVALID_ARGUMENT, id="no-op"),
    pytest.param(
        read(5, 0x20400, 1, address_space="no-such-space"),
        grpc.StatusCode.NOT_FOUND,
        id="unknown-address-space",
    ),
    pytest.param(
        read(5, 0x20400, (1 << 20) + 1), grpc.StatusCode.RESOURCE_EXHAUSTED, id="too-large"
    ),
    pytest.param(
        read(5, 0x20400, 1, attrs=pb.Attrs(requester_id=0x10000)),
        grpc.StatusCode.INVALID_ARGUMENT,
        id="requester-id-too-wide",
    ),
]


@pytest.mark.parametrize(("bad", "code"), BAD_ACCESSES)
def test_invalid_access_refuses_the_whole_batch_before_anything_runs(stub, bad, code):
    """A bad access at index 5 is refused naming `accesses[5]`, and none of the batch runs:
    not the five accesses before it, not the ones after."""
    addrs = [0x20500 + 8 * k for k in range(8)]
    batch(stub, *(write(k, a, b"old!") for k, a in enumerate(addrs)))
    accesses = [write(k, a, b"new!") for k, a in enumerate(addrs)]
    accesses[5] = bad
    error = batch_error(stub, *accesses)
    assert error.code() == code
    assert "accesses[5]" in error.details()
    assert [r.data for r in batch(stub, *(read(k, a, 4) for k, a in enumerate(addrs)))] == [
        b"old!"
    ] * 8


def test_batch_that_does_not_parse_is_invalid_argument(address):
    """Bytes that are not an RwBatchRequest are refused with INVALID_ARGUMENT."""
    with grpc.insecure_channel(address) as channel:
        raw = channel.unary_unary("/mmiobus.v1.Bus/RwBatch")
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\x0a\x05ab", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "RwBatchRequest" in info.value.details()


# -- limits ----------------------------------------------------------------------------------


def test_batch_at_the_limits_is_answered(limited_stub):
    """A batch with exactly the most accesses and bytes allowed runs."""
    per_access = MAX_BYTES // MAX_ACCESSES
    assert per_access <= MAX_ACCESS
    half = MAX_ACCESSES // 2
    accesses = [write(k, 0x1000 + per_access * k, bytes([k]) * per_access) for k in range(half)]
    accesses += [read(half + k, 0x1000 + per_access * k, per_access) for k in range(half)]
    results = batch(limited_stub, *accesses)
    assert [r.data for r in results[half:]] == [bytes([k]) * per_access for k in range(half)]


def test_too_many_accesses_is_resource_exhausted_naming_the_limit(limited_stub):
    """One access more than --max-batch-accesses is refused, naming the option and numbers."""
    n = MAX_ACCESSES + 1
    error = batch_error(limited_stub, *(read(k, 0x1000, 1) for k in range(n)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-batch-accesses" in error.details()
    assert has_number(error.details(), n) and has_number(error.details(), MAX_ACCESSES)


def test_too_many_bytes_is_resource_exhausted_naming_the_limit(limited_stub):
    """Accesses totalling more than --max-batch-bytes are refused, naming the option, the total
    and the limit."""
    accesses = [read(0, 0x1000, 60), write(1, 0x1100, bytes(60)), read(2, 0x1200, 60)]
    accesses += [write(3, 0x1300, bytes(60)), read(4, 0x1400, 60)]
    error = batch_error(limited_stub, *accesses)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-batch-bytes" in error.details()
    assert has_number(error.details(), 300) and has_number(error.details(), MAX_BYTES)


@pytest.mark.parametrize("op", ["read", "write"])
def test_too_large_access_in_batch_is_resource_exhausted_naming_the_limit(limited_stub, op):
    """An access over --max-access-bytes is refused, naming the access, the option, its size
    and the limit."""
    n = MAX_ACCESS + 1
    big = read(1, 0x1000, n) if op == "read" else write(1, 0x1000, bytes(n))
    error = batch_error(limited_stub, read(0, 0x1000, 1), big)
    details = error.details()
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "accesses[1]" in details and "--max-access-bytes" in details
    assert has_number(details, n) and has_number(details, MAX_ACCESS)


@pytest.mark.parametrize("op", ["read", "write"])
def test_too_large_single_access_is_resource_exhausted_naming_the_limit(limited_stub, op):
    """`Rw` applies --max-access-bytes too, naming the option, the size and the limit."""
    n = MAX_ACCESS + 1
    request = read(1, 0x1000, n) if op == "read" else write(1, 0x1000, bytes(n))
    with pytest.raises(grpc.RpcError) as info:
        limited_stub.Rw(request, timeout=10)
    details = info.value.details()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-access-bytes" in details
    assert has_number(details, n) and has_number(details, MAX_ACCESS)


def oversized_message() -> pb.RwBatchRequest:
    """A batch within every access limit whose message is larger than --max-message-bytes."""
    request = pb.RwBatchRequest(accesses=[read(0, 0x1000, 1, address_space="x" * MAX_MESSAGE)])
    assert request.ByteSize() > MAX_MESSAGE
    return request


def test_message_larger_than_max_message_bytes_is_resource_exhausted(limited_stub):
    """A request message over --max-message-bytes is refused with RESOURCE_EXHAUSTED."""
    with pytest.raises(grpc.RpcError) as info:
        limited_stub.RwBatch(oversized_message(), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_message_size_rejection_names_the_option(limited_stub):
    """The rejection of an oversized message says which option sets the limit."""
    with pytest.raises(grpc.RpcError) as info:
        limited_stub.RwBatch(oversized_message(), timeout=10)
    assert "--max-message-bytes" in info.value.details()


def test_batch_within_limits_gets_its_results_however_large_the_reply(tight_server):
    """A small request within every limit whose reply is larger (reads with large ids) still gets
    its results."""
    big_id = 1 << 63
    accesses = [write(big_id, 0x1000, b"written!")]
    accesses += [read(big_id + k, 0x1000, 62) for k in range(1, 5)]
    request = pb.RwBatchRequest(accesses=accesses)
    assert request.ByteSize() < MAX_BYTES
    with grpc.insecure_channel(tight_server.tcp) as channel:
        reply = bus_pb2_grpc.BusStub(channel).RwBatch(request, timeout=10)
    assert [r.data[:8] for r in reply.results[1:]] == [b"written!"] * 4


# -- the client ------------------------------------------------------------------------------


def test_client_batch_splits_long_batches_and_keeps_order(limited_server):
    """`Bus.batch` runs a batch far over the server's limits in several messages, in order:
    reads see the writes issued before them, even in an earlier message."""
    words = [Write(0x2000 + 8 * k, b"w%07d" % k) for k in range(40)]
    blocks = [Write(0x3000 + MAX_ACCESS * k, bytes([k]) * MAX_ACCESS) for k in range(12)]
    accesses = [
        *words,
        *(Read(w.addr, 8) for w in words),
        *blocks,
        *(Read(b.addr, MAX_ACCESS) for b in blocks),
        Write(0x2000, b"rewrite!"),
        Read(0x2000, 8),
    ]
    assert len(accesses) > MAX_ACCESSES
    with Bus(limited_server.tcp) as bus:
        results = bus.batch(accesses)
    expected: list[bytes | None] = [None] * len(accesses)
    expected[40:80] = [w.data for w in words]
    expected[92:104] = [b.data for b in blocks]
    expected[-1] = b"rewrite!"
    assert results == expected


def test_client_batch_fault_names_its_index_after_everything_ran(address):
    """With `check`, a fault raises BusFault with its index, address and result, and the
    accesses after it still ran."""
    with Bus(address) as bus:
        bus.write(0x20700, b"\x00")
        with pytest.raises(BusFault) as info:
            bus.batch([Read(0x20700, 1), Read(HOLE, 2), Write(0x20700, b"\x01")])
        assert (info.value.index, info.value.addr, info.value.size) == (1, HOLE, 2)
        assert info.value.result == MemTxResult.DECODE_ERROR
        assert bus.read(0x20700, 1) == b"\x01"


def test_client_batch_without_check_returns_results(address):
    """With `check=False`, `Bus.batch` returns each access's result instead of raising."""
    attrs = MemTxAttrs(requester_id=7)
    with Bus(address) as bus:
        results = bus.batch(
            [Write(0x20800, b"ok", attrs=attrs), Read(HOLE, 2), Write(ROM, b"\x00")], check=False
        )
    assert results[0] == MemTxResult.OK
    assert (results[1].data, results[1].result) == (bytes(2), MemTxResult.DECODE_ERROR)
    assert results[2] == MemTxResult.DECODE_ERROR


def test_client_batch_fits_its_messages_within_max_message_bytes(tight_server):
    """`Bus.batch` keeps each message within the server's message size too."""
    blocks = [Write(0x4000 + 64 * k, bytes([k]) * 64) for k in range(16)]
    with Bus(tight_server.tcp) as bus:
        results = bus.batch([*blocks, *(Read(b.addr, 64) for b in blocks)])
    assert results == [None] * 16 + [b.data for b in blocks]
