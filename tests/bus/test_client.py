"""The Python clients (`Bus`, `AsyncBus`) against a real `mmiobus serve` process.

Each test uses bytes of RAM no other test touches (the `spot` fixture), so the servers are
shared per module.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import re
import socket
from pathlib import Path

import pytest
from mmiobus.client import (
    AsyncBus,
    Bus,
    BusError,
    BusFault,
    Conflict,
    InvalidRequest,
    LimitExceeded,
    MemTxAttrs,
    MemTxResult,
    NotFound,
    Read,
    ReadResult,
    ServerUnavailable,
    Write,
)
from mmiobus.endpoints import AddressError
from mmiobus.v1 import bus_pb2 as pb
from support.servers import ServerProcess, start_server

# A little-endian machine with RAM, ROM, an mmio region nothing serves, and a second address
# space `dma` whose address 0 is RAM byte DMA_OFFSET.
MACHINE = """\
endianness: {endianness}
address_spaces:
  - {{name: memory, root: system}}
  - {{name: dma, root: dma-root}}
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {{name: ram, kind: ram, size: 1 MiB}}
      - {{name: rom, kind: rom, addr: 0x10000000, size: 0x1000}}
      - {{name: regs, kind: mmio, addr: 0x20000000, size: 0x100}}
  - name: dma-root
    kind: container
    size: 2**32
    subregions:
      - {{name: dma-window, kind: alias, target: ram, offset: 0x80000, size: 0x80000}}
"""
DMA_OFFSET = 0x80000
ROM = 0x10000000
REGS = 0x20000000
HOLE = 0x30000000  # nothing is mapped here
WIDTHS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}


def _serve(*args: str, config: Path | None = None):
    srv = start_server(*args, config=config)
    yield srv
    assert srv.stop() == 0, srv.log()


def _machine(tmp_path_factory, endianness: str) -> Path:
    path = tmp_path_factory.mktemp(endianness) / "machine.yaml"
    path.write_text(MACHINE.format(endianness=endianness))
    return path


@pytest.fixture(scope="module")
def little_server(tmp_path_factory):
    yield from _serve(config=_machine(tmp_path_factory, "little"))


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    yield from _serve(config=_machine(tmp_path_factory, "big"))


@pytest.fixture(scope="module")
def limited_server():
    """Small limits, so that splitting and rejections are easy to reach."""
    yield from _serve(
        "--max-topology-ops",
        "2",
        "--max-batch-accesses",
        "4",
        "--max-batch-bytes",
        "64",
        "--max-access-bytes",
        "32",
    )


@pytest.fixture(params=["tcp", "unix"])
def address(request, little_server: ServerProcess) -> str:
    return little_server.tcp if request.param == "tcp" else little_server.unix


@pytest.fixture(scope="module")
def bus(little_server):
    with Bus(little_server.tcp) as b:
        yield b


@pytest.fixture(scope="module")
def big_bus(big_server):
    with Bus(big_server.tcp) as b:
        yield b


_spots = itertools.count()
_names = itertools.count()


@pytest.fixture
def spot() -> int:
    """0x100 bytes of RAM (below DMA_OFFSET) that no other test uses."""
    n = next(_spots)
    assert n < DMA_OFFSET // 0x100
    return n * 0x100


def uid(prefix: str = "c") -> str:
    return f"{prefix}{next(_names)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- Bus: reads and writes -------------------------------------------------------------------


def test_write_then_read_returns_the_bytes(address, spot):
    """`Bus.write` then `Bus.read` over TCP and a unix socket."""
    with Bus(address) as b:
        b.write(spot, b"\x00\x11\x22\x33\x44")
        assert b.read(spot, 5) == b"\x00\x11\x22\x33\x44"


def test_two_connections_see_each_others_writes(little_server, spot):
    """A write on one connection is read on another (TCP and unix socket)."""
    with Bus(little_server.tcp) as a, Bus(little_server.unix) as b:
        a.write(spot, b"seen")
        assert b.read(spot, 4) == b"seen"


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_write_uN_stores_little_endian_bytes(bus, spot, width):
    """`write_uN` on a little-endian machine puts the least significant byte first."""
    n = WIDTHS[width]
    value = int.from_bytes(bytes(range(0xA1, 0xA1 + n)), "big")
    getattr(bus, f"write_{width}")(spot, value)
    assert bus.read(spot, n) == value.to_bytes(n, "little")


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_read_uN_decodes_little_endian_bytes(bus, spot, width):
    """`read_uN` on a little-endian machine reads the least significant byte first."""
    n = WIDTHS[width]
    raw = bytes(range(0x31, 0x31 + n))
    bus.write(spot, raw)
    assert getattr(bus, f"read_{width}")(spot) == int.from_bytes(raw, "little")


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_write_uN_on_a_big_endian_machine_stores_big_endian_bytes(big_bus, spot, width):
    """`write_uN` on an `endianness: big` machine puts the most significant byte first."""
    n = WIDTHS[width]
    value = int.from_bytes(bytes(range(0xB1, 0xB1 + n)), "big")
    getattr(big_bus, f"write_{width}")(spot, value)
    assert big_bus.read(spot, n) == value.to_bytes(n, "big")


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_read_uN_on_a_big_endian_machine_decodes_big_endian(big_bus, spot, width):
    """`read_uN` on an `endianness: big` machine reads the most significant byte first."""
    n = WIDTHS[width]
    raw = bytes(range(0x41, 0x41 + n))
    big_bus.write(spot, raw)
    assert getattr(big_bus, f"read_{width}")(spot) == int.from_bytes(raw, "big")


def test_write_u8_refuses_a_value_that_does_not_fit(bus, spot):
    """A value too large for the width is refused before anything is sent."""
    with pytest.raises(ValueError, match="256"):
        bus.write_u8(spot, 256)
    assert bus.read(spot, 1) == b"\x00"


def test_read_with_check_false_returns_a_read_result(bus, spot):
    """`check=False`: a good read is a ReadResult with the data and MemTxResult.OK."""
    bus.write(spot, b"abc")
    assert bus.read(spot, 3, check=False) == ReadResult(b"abc", MemTxResult.OK)


def test_faulting_read_with_check_false_returns_zeros_and_the_result(bus):
    """`check=False`: a read of a hole is zeros with DECODE_ERROR, no exception."""
    r = bus.read(HOLE, 4, check=False)
    assert isinstance(r, ReadResult)
    assert (r.data, r.result) == (bytes(4), MemTxResult.DECODE_ERROR)


def test_write_with_check_false_returns_the_mem_tx_result(bus, spot):
    """`check=False`: a write returns MemTxResult (OK for RAM, DECODE_ERROR for ROM)."""
    assert bus.write(spot, b"x", check=False) == MemTxResult.OK
    assert bus.write(ROM, b"x", check=False) == MemTxResult.DECODE_ERROR


def test_faulting_read_raises_bus_fault_with_its_details(bus):
    """A read that faults raises BusFault carrying address, size, result and direction."""
    with pytest.raises(BusFault) as info:
        bus.read(HOLE + 8, 4)
    e = info.value
    assert (e.addr, e.size, e.result, e.is_write) == (HOLE + 8, 4, MemTxResult.DECODE_ERROR, False)
    assert e.index is None


def test_bus_fault_message_names_address_size_and_result(bus):
    """BusFault's message says read/write, the size, the address in hex and the result."""
    with pytest.raises(BusFault) as info:
        bus.read(HOLE + 8, 4)
    message = str(info.value)
    for word in ("read", "4 bytes", hex(HOLE + 8), "DECODE_ERROR"):
        assert word in message, (word, message)


def test_faulting_write_raises_bus_fault_marked_as_a_write(bus):
    """A write to ROM raises BusFault with is_write and the number of bytes written."""
    with pytest.raises(BusFault) as info:
        bus.write(ROM + 0x10, b"\x01\x02\x03")
    e = info.value
    assert (e.addr, e.size, e.result, e.is_write) == (ROM + 0x10, 3, MemTxResult.DECODE_ERROR, True)
    assert "write" in str(e)
    assert hex(ROM + 0x10) in str(e)


def test_failed_write_to_rom_changes_nothing(bus):
    """The ROM's bytes are the same after a refused write."""
    before = bus.read(ROM, 8)
    bus.write(ROM, b"\xff" * 8, check=False)
    assert bus.read(ROM, 8) == before


# -- address spaces and attributes -----------------------------------------------------------


def test_address_space_per_call(bus, spot):
    """`address_space=` on a call: the `dma` space shows RAM from DMA_OFFSET on."""
    bus.write(DMA_OFFSET + spot, b"via memory")
    assert bus.read(spot, 10, address_space="dma") == b"via memory"
    bus.write(spot + 0x20, b"via dma", address_space="dma")
    assert bus.read(DMA_OFFSET + spot + 0x20, 7, address_space="memory") == b"via dma"


def test_address_space_as_connection_default(little_server, bus, spot):
    """`Bus(address_space=...)` applies to every call; a call may still name another space."""
    bus.write(DMA_OFFSET + spot, b"default")
    with Bus(little_server.tcp, address_space="dma") as dma:
        assert dma.read(spot, 7) == b"default"
        assert dma.read_u8(spot) == ord("d")
        assert dma.read(DMA_OFFSET + spot, 7, address_space="memory") == b"default"


def test_bus_fault_names_the_address_space(bus):
    """A fault in a named address space carries and names it."""
    with pytest.raises(BusFault) as info:
        bus.read(0x90000000, 4, address_space="dma")
    assert info.value.address_space == "dma"
    assert "dma" in str(info.value)


def test_unknown_address_space_raises_not_found_naming_it(bus):
    """An address space that does not exist: NotFound naming it."""
    with pytest.raises(NotFound, match="no-such-space"):
        bus.read(0, 4, address_space="no-such-space")


def test_attrs_per_call(bus, spot):
    """`attrs=MemTxAttrs(memory=True)`: RAM answers, an mmio region answers ACCESS_ERROR."""
    memory_only = MemTxAttrs(memory=True)
    bus.write(spot, b"ram")
    assert bus.read(spot, 3, attrs=memory_only) == b"ram"
    assert bus.read(REGS, 4, attrs=memory_only, check=False).result == MemTxResult.ACCESS_ERROR
    assert bus.read(REGS, 4, check=False).result == MemTxResult.DECODE_ERROR


def test_attrs_as_connection_default(little_server):
    """`Bus(attrs=...)` applies to every call; a call's own attrs replace them."""
    with Bus(little_server.tcp, attrs=MemTxAttrs(memory=True)) as b:
        assert b.read(REGS, 4, check=False).result == MemTxResult.ACCESS_ERROR
        assert b.write(REGS, b"\0", check=False) == MemTxResult.ACCESS_ERROR
        assert b.read(REGS, 4, attrs=MemTxAttrs(), check=False).result == (MemTxResult.DECODE_ERROR)


def test_requester_id_wider_than_16_bits_is_an_invalid_request(bus):
    """A requester id that does not fit in 16 bits: InvalidRequest naming the field and value."""
    with pytest.raises(InvalidRequest) as info:
        bus.read(0, 1, attrs=MemTxAttrs(requester_id=0x12345))
    assert "requester_id" in str(info.value)
    assert str(0x12345) in str(info.value)


# -- streams ---------------------------------------------------------------------------------


def test_stream_futures_resolve_in_issue_order(bus, spot):
    """Futures of one stream complete in the order the accesses were issued."""
    done: list[int] = []
    with bus.stream() as s:
        futures = []
        for i in range(64):
            f = s.write(spot + i, bytes([i])) if i % 2 else s.read(spot + i, 1)
            f.add_done_callback(lambda _f, i=i: done.append(i))
            futures.append(f)
        s.flush()
    assert done == list(range(64))


def test_stream_runs_many_pipelined_accesses_in_order(bus, spot):
    """A thousand writes then reads of the same bytes, all in flight: reads see the writes."""
    with bus.stream() as s:
        writes = [s.write(spot + (i % 0x100), bytes([i & 0xFF])) for i in range(1000)]
        reads = [s.read(spot + i, 1) for i in range(0x100)]
        later = [s.write(spot + i, b"\xee") for i in range(0x100)]
    assert [w.result() for w in writes] == [None] * 1000
    last = {i % 0x100: i & 0xFF for i in range(1000)}
    assert [r.result() for r in reads] == [bytes([last[i]]) for i in range(0x100)]
    assert all(w.result() is None for w in later)
    assert bus.read(spot, 0x100) == b"\xee" * 0x100


def test_stream_flush_waits_for_every_answer(bus, spot):
    """After `flush()`, every future issued so far is done."""
    with bus.stream() as s:
        futures = [s.write(spot, b"\x01") for _ in range(200)] + [s.read(spot, 1)]
        s.flush()
        assert all(f.done() for f in futures)
        assert futures[-1].result() == b"\x01"


def test_stream_fault_fails_only_that_future(bus, spot):
    """A faulting access raises BusFault from its future; the stream keeps working."""
    with bus.stream() as s:
        bad = s.read(HOLE, 4)
        good = s.write(spot, b"after")
        s.flush()
        assert isinstance(bad.exception(), BusFault)
        assert bad.exception().addr == HOLE
        assert good.result() is None
        assert s.read(spot, 5).result() == b"after"


def test_stream_with_check_false_returns_results(bus, spot):
    """`check=False` on stream accesses yields ReadResult / MemTxResult."""
    with bus.stream() as s:
        r = s.read(HOLE, 2, check=False)
        w = s.write(ROM, b"x", check=False)
    assert r.result() == ReadResult(bytes(2), MemTxResult.DECODE_ERROR)
    assert w.result() == MemTxResult.DECODE_ERROR


def test_stream_accesses_take_address_space_and_attrs(bus, spot):
    """Stream accesses accept `address_space=` and `attrs=` like single calls."""
    bus.write(DMA_OFFSET + spot, b"dma!")
    with bus.stream() as s:
        via_dma = s.read(spot, 4, address_space="dma")
        denied = s.read(REGS, 4, attrs=MemTxAttrs(memory=True), check=False)
    assert via_dma.result() == b"dma!"
    assert denied.result().result == MemTxResult.ACCESS_ERROR


def test_using_a_closed_stream_raises(bus, spot):
    """After its `with` block, a stream refuses new accesses."""
    with bus.stream() as s:
        s.read(spot, 1).result()
    with pytest.raises(RuntimeError, match="stream"):
        s.read(spot, 1)


def test_stream_futures_are_concurrent_futures(bus, spot):
    """The blocking stream hands back concurrent.futures.Future objects at once."""
    with bus.stream() as s:
        f = s.read(spot, 1)
        assert isinstance(f, concurrent.futures.Future)
        assert f.result(timeout=30) == b"\x00"


def test_stream_splits_messages_within_server_limits(limited_server):
    """More accesses than --max-batch-accesses in flight on a stream still all run, in order."""
    with Bus(limited_server.tcp) as b, b.stream() as s:
        writes = [s.write(0x1000 + i, bytes([i])) for i in range(20)]
        reads = [s.read(0x1000 + i, 1) for i in range(20)]
        s.flush()
        assert all(w.result() is None for w in writes)
        assert [r.result() for r in reads] == [bytes([i]) for i in range(20)]


# -- batches ---------------------------------------------------------------------------------


def test_batch_runs_reads_and_writes_in_order(bus, spot):
    """`batch`: one outcome per access (None for writes, bytes for reads), in order."""
    out = bus.batch(
        [
            Write(spot, b"one"),
            Read(spot, 3),
            Write(spot, b"two"),
            Read(spot, 3),
        ]
    )
    assert out == [None, b"one", None, b"two"]


def test_batch_fault_raises_with_its_index_after_the_whole_batch_ran(bus, spot):
    """A fault at index k raises BusFault(index=k); accesses after it took effect."""
    with pytest.raises(BusFault) as info:
        bus.batch([Write(spot, b"a"), Write(spot + 1, b"b"), Read(HOLE, 4), Write(spot + 2, b"c")])
    assert info.value.index == 2
    assert info.value.addr == HOLE
    assert "access 2" in str(info.value)
    assert bus.read(spot, 3) == b"abc"


def test_batch_with_check_false_returns_each_result(bus, spot):
    """`check=False`: ReadResult / MemTxResult per access, faults included."""
    out = bus.batch([Write(spot, b"ok"), Read(HOLE, 2), Write(ROM, b"x")], check=False)
    assert out == [
        MemTxResult.OK,
        ReadResult(bytes(2), MemTxResult.DECODE_ERROR),
        MemTxResult.DECODE_ERROR,
    ]


def test_batch_accesses_take_address_space_and_attrs(bus, spot):
    """`Read`/`Write` carry their own address space and attributes."""
    out = bus.batch(
        [
            Write(spot, b"in dma", address_space="dma"),
            Read(DMA_OFFSET + spot, 6),
            Read(REGS, 4, attrs=MemTxAttrs(memory=True)),
        ],
        check=False,
    )
    assert out[1] == ReadResult(b"in dma", MemTxResult.OK)
    assert out[2].result == MemTxResult.ACCESS_ERROR


def test_batch_larger_than_server_limits_is_split(limited_server):
    """A batch over --max-batch-accesses/--max-batch-bytes is sent as several, in order."""
    with Bus(limited_server.tcp) as b:
        accesses = [Write(0x2000 + 8 * i, bytes([i]) * 8) for i in range(12)]
        accesses += [Read(0x2000 + 8 * i, 8) for i in range(12)]
        out = b.batch(accesses)
    assert out[12:] == [bytes([i]) * 8 for i in range(12)]


# -- limits ----------------------------------------------------------------------------------


def test_access_larger_than_the_limit_raises_limit_exceeded(limited_server):
    """A read over --max-access-bytes: LimitExceeded naming the option and the size."""
    with Bus(limited_server.tcp) as b:
        limit = b.info.limits.max_access_bytes
        with pytest.raises(LimitExceeded) as info:
            b.read(0, limit + 1)
    assert "--max-access-bytes" in str(info.value)
    assert str(limit + 1) in str(info.value)


# -- topology through the client -------------------------------------------------------------


def test_transaction_applies_when_the_block_ends(bus):
    """`with bus.transaction() as t:` applies its operations at the end of the block."""
    r = uid()
    with bus.transaction() as t:
        t.create_region(r, "ram", 0x10, contents=b"tx")
        t.add_subregion("system", r, 0x40000000)
        assert r not in [x.id for x in bus.topology(flat_views=False).regions]
    assert t.reply.applied == 2
    assert bus.read(0x40000000, 2) == b"tx"


def test_transaction_is_not_applied_when_the_block_raises(bus):
    """An exception inside the block discards the operations."""
    r = uid()
    with pytest.raises(KeyError), bus.transaction() as t:
        t.create_region(r, "ram", 0x10)
        raise KeyError("abandon")
    assert r not in [x.id for x in bus.topology(flat_views=False).regions]


def test_apply_missing_region_raises_not_found_with_the_servers_message(bus):
    """`apply` of an op naming a missing region: NotFound with the server's message."""
    missing = uid("missing")
    with pytest.raises(NotFound) as info:
        bus.apply(
            bus.transaction().create_region(uid(), "ram", 16).add_subregion("system", missing, 0)
        )
    e = info.value
    assert str(e) == e.details
    assert "ops[1]" in str(e)
    assert missing in str(e)


def test_apply_existing_id_raises_conflict(bus):
    """Creating a region whose id exists: Conflict naming the id."""
    with pytest.raises(Conflict) as info:
        bus.apply(bus.transaction().create_region("ram", "ram", 16))
    assert str(info.value) == info.value.details
    assert "ops[0]" in str(info.value)
    assert "'ram'" in str(info.value)


def test_apply_mapping_a_region_twice_raises_conflict(bus):
    """Mapping an already mapped region: Conflict naming the op and region."""
    with pytest.raises(Conflict) as info:
        bus.apply(bus.transaction().add_subregion("system", "rom", 0x50000000))
    assert "ops[0]" in str(info.value)
    assert "rom" in str(info.value)


def test_apply_malformed_op_raises_invalid_request(bus):
    """An access size of 3 bytes: InvalidRequest naming the op and the field."""
    t = bus.transaction().create_region(uid("m"), "mmio", 16, valid={"min": 3})
    with pytest.raises(InvalidRequest) as info:
        bus.apply(t)
    assert str(info.value) == info.value.details
    assert "ops[0]" in str(info.value)
    assert "valid.min" in str(info.value)


def test_apply_more_ops_than_allowed_raises_limit_exceeded(limited_server):
    """More ops than --max-topology-ops: LimitExceeded naming the option."""
    with Bus(limited_server.tcp) as b:
        t = b.transaction()
        for _ in range(3):
            t.create_region(uid(), "ram", 16)
        with pytest.raises(LimitExceeded, match="--max-topology-ops") as info:
            b.apply(t)
    assert str(info.value) == info.value.details


def test_apply_refreshes_the_address_spaces_the_client_knows(bus, spot):
    """After create_address_space, `info` lists the new space and accesses can use it."""
    r, space = uid(), uid("space")
    bus.apply(
        bus.transaction()
        .create_region(r, "ram", 0x10, contents=b"new")
        .create_address_space(space, r)
    )
    assert space in [s.id for s in bus.info.address_spaces]
    assert bus.read(0, 3, address_space=space) == b"new"


def test_mtree_and_topology_show_applied_changes(bus):
    """`mtree()` and `topology()` reflect a region mapped through `apply`."""
    r = uid("shown")
    bus.apply(
        bus.transaction().create_region(r, "ram", 0x10).add_subregion("system", r, 0x41000000)
    )
    ranges = next(s for s in bus.topology().address_spaces if s.id == "memory").flat_view
    assert any(fr.region == r and fr.start == 0x41000000 for fr in ranges)
    assert any(line.endswith(f"): {r}") for line in bus.mtree(flat=True).splitlines())


# -- connecting ------------------------------------------------------------------------------


def test_no_server_raises_server_unavailable_saying_how_to_fix_it():
    """Nothing listens: ServerUnavailable naming the address and `mmiobus serve`."""
    target = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnavailable) as info:
        Bus(target, timeout=10)
    message = str(info.value)
    assert target in message
    assert "mmiobus serve" in message


def test_missing_unix_socket_raises_server_unavailable(tmp_path):
    """A unix socket path with no server: ServerUnavailable, not a raw gRPC error."""
    with pytest.raises(ServerUnavailable, match="mmiobus serve"):
        Bus(f"unix:{tmp_path / 'none.sock'}", timeout=10)


def test_mmiobus_server_environment_variable_is_the_default_address(
    little_server, monkeypatch, spot
):
    """`Bus()` with no address connects to $MMIOBUS_SERVER."""
    monkeypatch.setenv("MMIOBUS_SERVER", little_server.unix)
    with Bus() as b:
        assert b.address == little_server.unix
        b.write(spot, b"env")
    with Bus(little_server.tcp) as b:
        assert b.read(spot, 3) == b"env"


def test_relative_unix_socket_path_works(little_server, monkeypatch, spot):
    """`unix:NAME` is relative to the current directory."""
    path = Path(little_server.unix.removeprefix("unix:"))
    monkeypatch.chdir(path.parent)
    with Bus(f"unix:{path.name}") as b:
        b.write(spot, b"rel")
        assert b.read(spot, 3) == b"rel"


def test_info_reports_the_machines_byte_order_and_spaces(bus, big_bus):
    """`info` says the byte order and address spaces of the machine file."""
    assert bus.info.endianness == pb.LITTLE
    assert big_bus.info.endianness == pb.BIG
    assert [s.id for s in big_bus.info.address_spaces] == ["memory", "dma"]


# -- AsyncBus --------------------------------------------------------------------------------


async def test_async_write_then_read(address, spot):
    """`AsyncBus` reads what it wrote, over TCP and a unix socket."""
    async with AsyncBus(address) as b:
        await b.write(spot, b"async")
        assert await b.read(spot, 5) == b"async"


@pytest.mark.parametrize("width", sorted(WIDTHS))
async def test_async_uN_round_trip_in_big_endian(big_server, spot, width):
    """`AsyncBus.write_uN` / `read_uN` use the machine's (big-endian) byte order."""
    n = WIDTHS[width]
    value = int.from_bytes(bytes(range(0x51, 0x51 + n)), "big")
    async with AsyncBus(big_server.tcp) as b:
        await getattr(b, f"write_{width}")(spot, value)
        assert await b.read(spot, n) == value.to_bytes(n, "big")
        assert await getattr(b, f"read_{width}")(spot) == value


async def test_async_fault_raises_bus_fault(little_server):
    """`AsyncBus.read` of a hole raises BusFault; `check=False` returns the result."""
    async with AsyncBus(little_server.tcp) as b:
        with pytest.raises(BusFault) as info:
            await b.read(HOLE, 2)
        assert (info.value.addr, info.value.size) == (HOLE, 2)
        assert (await b.read(HOLE, 2, check=False)).result == MemTxResult.DECODE_ERROR


async def test_async_address_space_and_attrs_defaults(little_server, spot):
    """`AsyncBus(address_space=..., attrs=...)` are defaults for every call."""
    async with AsyncBus(little_server.tcp) as b:
        await b.write(DMA_OFFSET + spot, b"adma")
    async with AsyncBus(little_server.tcp, address_space="dma", attrs=MemTxAttrs(memory=True)) as b:
        assert await b.read(spot, 4) == b"adma"
        r = await b.read(REGS, 4, address_space="memory", check=False)
        assert r.result == MemTxResult.ACCESS_ERROR


async def test_async_stream_futures_resolve_in_order(little_server, spot):
    """On an AsyncStream, futures complete in issue order and carry the right data."""
    done: list[int] = []
    async with AsyncBus(little_server.tcp) as b, b.stream() as s:
        futures = []
        for i in range(100):
            f = s.write(spot + i % 16, bytes([i])) if i % 3 else s.read(spot + i % 16, 1)
            f.add_done_callback(lambda _f, i=i: done.append(i))
            futures.append(f)
        await s.flush()
        assert all(f.done() for f in futures)
    assert done == list(range(100))


async def test_async_stream_pipelines_many_accesses(little_server, spot):
    """Hundreds of accesses in flight on one AsyncStream all answer correctly."""
    async with AsyncBus(little_server.tcp) as b:
        async with b.stream() as s:
            writes = [s.write(spot + i, bytes([i])) for i in range(0x100)]
            reads = [s.read(spot + i, 1) for i in range(0x100)]
        assert all(w.result() is None for w in writes)
        assert [r.result() for r in reads] == [bytes([i]) for i in range(0x100)]


async def test_async_closed_stream_raises(little_server, spot):
    """An AsyncStream used after its block raises BusError."""
    async with AsyncBus(little_server.tcp) as b:
        async with b.stream() as s:
            await s.read(spot, 1)
        with pytest.raises(BusError, match="closed"):
            s.read(spot, 1)


async def test_async_batch_fault_index(little_server, spot):
    """`AsyncBus.batch`: a fault at index k raises BusFault(index=k) after the batch ran."""
    async with AsyncBus(little_server.tcp) as b:
        with pytest.raises(BusFault) as info:
            await b.batch([Read(HOLE, 1), Write(spot, b"later")])
        assert info.value.index == 0
        assert await b.read(spot, 5) == b"later"


async def test_async_transaction_applies_on_exit_not_on_exception(little_server):
    """`async with bus.transaction()` applies at the end, and not when the block raises."""
    kept, dropped = uid("kept"), uid("dropped")
    async with AsyncBus(little_server.tcp) as b:
        async with b.transaction() as t:
            t.create_region(kept, "ram", 16)
        with pytest.raises(RuntimeError):
            async with b.transaction() as t:
                t.create_region(dropped, "ram", 16)
                raise RuntimeError("abandon")
        ids = [r.id for r in (await b.topology(flat_views=False)).regions]
    assert kept in ids
    assert dropped not in ids


async def test_async_apply_error_raises_not_found(little_server):
    """`AsyncBus.apply` raises NotFound with the server's message."""
    async with AsyncBus(little_server.tcp) as b:
        with pytest.raises(NotFound, match=r"ops\[0\]"):
            await b.apply(b.transaction().set_enabled(uid("missing"), False))


async def test_async_no_server_raises_server_unavailable():
    """`AsyncBus` connecting where nothing listens raises ServerUnavailable."""
    with pytest.raises(ServerUnavailable, match="mmiobus serve"):
        async with AsyncBus(f"127.0.0.1:{free_port()}", timeout=10):
            pass


async def test_async_apply_asks_for_info_again_only_after_creating_an_address_space(
    little_server,
):
    """`info` lists the address spaces and nothing else an operation changes: `apply` asks the
    server for it again after a transaction that created an address space, and only then."""
    async with AsyncBus(little_server.tcp) as b:
        calls = []
        get_info = b.stub.GetInfo
        b.stub.GetInfo = lambda *a, **kw: calls.append(1) or get_info(*a, **kw)
        info, region, space = b.info, uid("plain"), uid("space")
        await b.apply(b.transaction().create_region(region, "ram", 0x10))
        assert calls == [] and b.info is info
        await b.apply(b.transaction().create_address_space(space, region))
        assert calls == [1]
        assert space in [s.id for s in b.info.address_spaces]


def test_byteorder_is_the_machines(bus, big_bus):
    """`byteorder` says how `read_uN`/`write_uN` lay out values: the description's order."""
    assert (bus.byteorder, big_bus.byteorder) == ("little", "big")


# -- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, normalised",
    [("127.0.0.1", "127.0.0.1:7170"), ("localhost:9", "localhost:9"), ("[::1]", "[::1]:7170")],
)
def test_an_address_without_a_port_means_port_7170(address, normalised):
    assert AsyncBus(address).address == normalised


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "http://127.0.0.1:7170", "::1"])
def test_a_malformed_address_is_refused_before_connecting(address):
    """The client checks an address as the command line does (AddressError, a ValueError),
    instead of dialling something else (a port modulo 65536, port 443)."""
    with pytest.raises(AddressError, match=re.escape(repr(address))):
        Bus(address)
