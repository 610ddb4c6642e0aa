"""`Bus.Rw` on the wire: one access per call, over TCP and over a unix socket.

The server runs a small machine written for these tests: RAM at 0 and at the very top of the
address space (so an access can wrap), a device-less MMIO window, a ROM with known contents, a
hole, and a second address space with RAM of its own.
"""

from __future__ import annotations

import grpc
import pytest
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.servers import ServerFactory, ServerProcess

TOP = 1 << 64
RAM_SIZE = 0x100000  # RAM at 0 ends here; a hole follows
UART = 0x10000000  # a device-less mmio window
ROM = 0xFFFC0000
ROM_CONTENTS = bytes((i * 7 + 3) & 0xFF for i in range(0x1000))
HOLE = 0x20000000
HIGH_RAM = TOP - 0x1000  # RAM at the top of the address space

MACHINE = """\
endianness: little
address_spaces:
  - {name: memory, root: system}
  - {name: io, root: io-root}
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, addr: 0, size: 1 MiB}
      - {name: uart0, kind: mmio, addr: 0x10000000, size: 0x100}
      - {name: boot.rom, kind: rom, addr: 0xfffc0000, size: 4 KiB, file: rom.bin}
      - {name: high.ram, kind: ram, addr: 0xfffffffffffff000, size: 4 KiB}
  - name: io-root
    kind: container
    size: 0x10000
    subregions:
      - {name: io.ram, kind: ram, addr: 0, size: 4 KiB}
"""

OK = pb.MEMTX_OK
DECODE_ERROR = pb.MEMTX_DECODE_ERROR
ACCESS_ERROR = pb.MEMTX_ACCESS_ERROR


@pytest.fixture(scope="module")
def rw_server(machine_server: ServerFactory) -> ServerProcess:
    """One server on the test machine for the whole module."""
    return machine_server(MACHINE, files={"rom.bin": ROM_CONTENTS})


@pytest.fixture(params=["tcp", "unix"])
def channel(request, rw_server):
    """A raw gRPC channel to the test server, over TCP and over a unix socket."""
    target = rw_server.tcp if request.param == "tcp" else rw_server.unix
    with grpc.insecure_channel(target) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return bus_pb2_grpc.BusStub(channel)


def rw(stub, **fields) -> pb.RwResponse:
    return stub.Rw(pb.RwRequest(**fields), timeout=10)


def rpc_error(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=10)
    return info.value


# -- RAM, ROM, holes -------------------------------------------------------------------------


def test_ram_write_then_read_round_trips(stub):
    """Bytes written to RAM read back unchanged, both with result OK."""
    data = bytes(range(1, 40))
    assert rw(stub, addr=0x1000, write=data).result == OK
    reply = rw(stub, addr=0x1000, read=len(data))
    assert (reply.data, reply.result) == (data, OK)


def test_rom_reads_its_contents(stub):
    """A ROM reads directly: the contents of its file, result OK."""
    reply = rw(stub, addr=ROM + 0x10, read=64)
    assert (reply.data, reply.result) == (ROM_CONTENTS[0x10 : 0x10 + 64], OK)


def test_rom_write_is_a_decode_error_result_and_leaves_rom_unchanged(stub):
    """A ROM write is answered (not an RPC error) with DECODE_ERROR; the ROM keeps its bytes."""
    before = rw(stub, addr=ROM + 0x100, read=16).data
    reply = rw(stub, addr=ROM + 0x100, write=bytes(b ^ 0xFF for b in before))
    assert reply.result == DECODE_ERROR
    assert rw(stub, addr=ROM + 0x100, read=16).data == before == ROM_CONTENTS[0x100:0x110]


def test_read_of_unassigned_hole_is_zeros_with_decode_error(stub):
    """Nothing decodes a hole: the read answers zeros and DECODE_ERROR."""
    reply = rw(stub, addr=HOLE, read=8)
    assert (reply.data, reply.result) == (bytes(8), DECODE_ERROR)


def test_write_to_unassigned_hole_is_a_decode_error_result(stub):
    """A write into a hole is answered with DECODE_ERROR, and the hole still reads zeros."""
    assert rw(stub, addr=HOLE + 0x40, write=b"\x55" * 4).result == DECODE_ERROR
    assert rw(stub, addr=HOLE + 0x40, read=4).data == bytes(4)


def test_mmio_without_device_reads_zeros_with_decode_error(stub):
    """An mmio window nobody serves answers as QEMU's unassigned memory."""
    reply = rw(stub, addr=UART, read=4)
    assert (reply.data, reply.result) == (bytes(4), DECODE_ERROR)


def test_mmio_without_device_write_is_a_decode_error_result(stub):
    """A write to an mmio window nobody serves is answered with DECODE_ERROR."""
    assert rw(stub, addr=UART + 4, write=b"\x01\x02\x03\x04").result == DECODE_ERROR


# -- lengths and addresses -------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 3, 8, 4097, 65536])
def test_read_returns_exactly_the_requested_length(stub, length):
    """A RAM read answers exactly the number of bytes asked for."""
    reply = rw(stub, addr=0x20000, read=length)
    assert len(reply.data) == length
    assert reply.result == OK


@pytest.mark.parametrize("addr", [HOLE, UART])
def test_faulting_read_still_returns_the_requested_length(stub, addr):
    """A read nothing answers is padded with zeros to the requested length."""
    reply = rw(stub, addr=addr, read=37)
    assert reply.data == bytes(37)


def test_read_running_off_ram_keeps_ram_bytes_and_pads_the_rest_with_zeros(stub):
    """A read straddling the end of RAM returns the RAM bytes, then zeros, with DECODE_ERROR."""
    rw(stub, addr=RAM_SIZE - 4, write=b"\xa1\xa2\xa3\xa4")
    reply = rw(stub, addr=RAM_SIZE - 4, read=8)
    assert (reply.data, reply.result) == (b"\xa1\xa2\xa3\xa4" + bytes(4), DECODE_ERROR)


def test_zero_length_read_is_ok_and_empty(stub):
    """Reading 0 bytes answers no data and result OK."""
    reply = rw(stub, addr=0x3000, read=0)
    assert (reply.data, reply.result) == (b"", OK)


def test_zero_length_write_is_ok_and_changes_nothing(stub):
    """Writing 0 bytes answers OK and leaves memory as it was."""
    rw(stub, addr=0x3100, write=b"\x11\x22")
    assert rw(stub, addr=0x3100, write=b"").result == OK
    assert rw(stub, addr=0x3100, read=2).data == b"\x11\x22"


def test_access_running_past_top_of_address_space_wraps_to_zero(stub):
    """An access crossing 2**64 continues at address 0, as QEMU's u64 arithmetic does."""
    data = b"ABCDEFGH"
    assert rw(stub, addr=TOP - 4, write=data).result == OK
    assert rw(stub, addr=TOP - 4, read=4).data == data[:4]
    assert rw(stub, addr=0, read=4).data == data[4:]
    reply = rw(stub, addr=TOP - 4, read=8)
    assert (reply.data, reply.result) == (data, OK)


def test_last_byte_of_address_space_is_accessible(stub):
    """Address 2**64-1 is an ordinary address."""
    assert rw(stub, addr=TOP - 1, write=b"\x7e").result == OK
    assert rw(stub, addr=TOP - 1, read=1).data == b"\x7e"


# -- attributes ------------------------------------------------------------------------------


def test_memory_attribute_travels_and_refuses_non_ram(stub):
    """`attrs.memory` reaches the bus: mmio answers ACCESS_ERROR instead of DECODE_ERROR, while
    RAM answers as usual."""
    memory_only = pb.Attrs(memory=True)
    assert rw(stub, addr=UART, read=4).result == DECODE_ERROR
    assert rw(stub, addr=UART, read=4, attrs=memory_only).result == ACCESS_ERROR
    rw(stub, addr=0x4000, write=b"\x99")
    reply = rw(stub, addr=0x4000, read=1, attrs=memory_only)
    assert (reply.data, reply.result) == (b"\x99", OK)


def test_all_attributes_within_range_are_accepted(stub):
    """A 16-bit requester id with secure and user set is a valid access."""
    attrs = pb.Attrs(requester_id=0xFFFF, secure=True, user=True)
    assert rw(stub, addr=0x4100, write=b"\x01", attrs=attrs).result == OK
    assert rw(stub, addr=0x4100, read=1, attrs=attrs).data == b"\x01"


def test_requester_id_over_16_bits_is_invalid_argument_naming_the_field(stub):
    """A requester id that does not fit in 16 bits is refused, naming the field and value."""
    request = pb.RwRequest(addr=0x4200, read=1, attrs=pb.Attrs(requester_id=0x10000))
    error = rpc_error(stub.Rw, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "requester_id" in error.details()
    assert str(0x10000) in error.details()


# -- address spaces --------------------------------------------------------------------------


def test_empty_address_space_is_the_first_one(stub):
    """An access with no address space goes to the machine's first address space."""
    rw(stub, addr=0x800, write=b"first", address_space="")
    assert rw(stub, addr=0x800, read=5, address_space="memory").data == b"first"


def test_named_address_space_is_its_own_memory(stub):
    """Accesses naming another address space reach its regions, not the first one's."""
    rw(stub, addr=0x900, write=b"system")
    rw(stub, addr=0x900, write=b"io-ram", address_space="io")
    assert rw(stub, addr=0x900, read=6, address_space="io").data == b"io-ram"
    assert rw(stub, addr=0x900, read=6).data == b"system"


def test_unknown_address_space_is_not_found_naming_the_id(stub):
    """An address space id the machine does not have is NOT_FOUND, and the message names it."""
    error = rpc_error(stub.Rw, pb.RwRequest(addr=0, read=1, address_space="no-such-space"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-space" in error.details()


# -- malformed requests ----------------------------------------------------------------------


def test_request_with_neither_read_nor_write_is_invalid_argument(stub):
    """An access must say what to do; the message names the choice."""
    error = rpc_error(stub.Rw, pb.RwRequest(addr=0x1000))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "read" in error.details() and "write" in error.details()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xff\xff\xff", id="corrupt-tag"),
        pytest.param(b"\x2a\x05ab", id="truncated-write"),
        pytest.param(b"\x20\x80", id="truncated-varint"),
        pytest.param(b"\x12\x02\xff\xfe", id="address-space-not-utf8"),
    ],
)
def test_bytes_that_do_not_parse_are_invalid_argument(channel, payload):
    """A request the server cannot parse blames the client (INVALID_ARGUMENT), not itself."""
    raw = channel.unary_unary("/mmiobus.v1.Bus/Rw")  # no serializer: bytes go out as they are
    error = rpc_error(raw, payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "RwRequest" in error.details()


# -- ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rid", [0, 1, 12345, TOP - 1])
def test_id_is_echoed(stub, rid):
    """Reads and writes answer with the request's id, whatever its value."""
    assert rw(stub, id=rid, addr=0x5000, write=b"\x01").id == rid
    assert rw(stub, id=rid, addr=0x5000, read=1).id == rid


def test_id_is_echoed_on_a_faulting_access(stub):
    """A bus fault is still an answer to the request, with its id."""
    reply = rw(stub, id=77, addr=HOLE, read=1)
    assert (reply.id, reply.result) == (77, DECODE_ERROR)
