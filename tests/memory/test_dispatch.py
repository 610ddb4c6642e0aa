"""Access dispatch: the read/write loop, piece sizes, validity, splitting and widening, byte
order, results and the re-entrancy guard, and unassigned memory, ROM and ROM devices
(docs/memory-rules.md: ACCESS, PIECE, VALID, IMPL, ENDIAN, RESULT, HOLE, ROM and GUARD rules).

Every expected value below is worked out from those rules; devices are small in-process
ops that record their callbacks so the exact call sequence can be asserted.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from mmiobus.memory import (
    MEMTX_ACCESS_ERROR,
    MEMTX_DECODE_ERROR,
    MEMTX_ERROR,
    MEMTX_OK,
    MEMTXATTRS_UNSPECIFIED,
    AccessConstraints,
    AddressSpace,
    AsyncOpsError,
    Endianness,
    InvalidArgumentError,
    MemoryRegion,
    MemoryRegionOps,
    MemorySystem,
    MemTxAttrs,
    MemTxResult,
    ReadResult,
    Unassigned,
)
from mmiobus.memory.dispatch import access_valid

TWO64 = 1 << 64
MEMORY_ONLY = MemTxAttrs(memory=True)


# -- helpers ------------------------------------------------------------------------------------


def new_machine(
    endianness: Endianness = Endianness.LITTLE,
) -> tuple[MemorySystem, MemoryRegion, AddressSpace]:
    """A memory system with an empty 2**64 ``system`` container seen by the ``memory`` AS."""
    sys_ = MemorySystem(endianness)
    system = sys_.container("system", TWO64)
    memory = sys_.address_space("memory", system)
    return sys_, system, memory


class Recorder:
    """An in-process device that logs every callback.

    Reads answer ``values[offset]`` (0 if absent); an entry may be a callable taking
    ``(offset, size)`` for answers that raise or misbehave. Writes answer ``write_results``
    per offset (``None`` if absent).
    """

    def __init__(
        self,
        values: dict[int, Any] | None = None,
        write_results: dict[int, Any] | None = None,
    ) -> None:
        self.values = values or {}
        self.write_results = write_results or {}
        self.calls: list[tuple[Any, ...]] = []
        self.attrs: list[MemTxAttrs] = []

    def read(self, offset: int, size: int, attrs: MemTxAttrs) -> Any:
        self.calls.append(("read", offset, size))
        self.attrs.append(attrs)
        value = self.values.get(offset, 0)
        return value(offset, size) if callable(value) else value

    def write(self, offset: int, size: int, value: int, attrs: MemTxAttrs) -> Any:
        self.calls.append(("write", offset, size, value))
        self.attrs.append(attrs)
        result = self.write_results.get(offset)
        return result(offset, size) if callable(result) else result


def ops_for(dev: Recorder, **kw: Any) -> MemoryRegionOps:
    return MemoryRegionOps(read=dev.read, write=dev.write, **kw)


def map_device(
    sys_: MemorySystem,
    container: MemoryRegion,
    addr: int,
    size: int = 0x100,
    *,
    name: str = "dev",
    values: dict[int, Any] | None = None,
    priority: int = 0,
    **ops_kw: Any,
) -> Recorder:
    """Map a recording MMIO device at ``addr`` and return its recorder."""
    dev = Recorder(values)
    container.add_subregion(addr, sys_.mmio(name, size, ops_for(dev, **ops_kw)), priority)
    return dev


def raises(offset: int, size: int) -> Any:
    raise RuntimeError(f"device fault at {offset:#x}")


def io_machine() -> tuple[MemorySystem, MemoryRegion, AddressSpace]:
    """The PC I/O space: a 64 KiB root that answers unassigned ports like ``unassigned_io_ops``."""
    sys_ = MemorySystem()
    io = sys_.mmio("io", 0x10000, unassigned=Unassigned.IO)
    return sys_, io, sys_.address_space("I/O", io)


LEAKS_COROUTINES = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
"""For tests that hit the un-awaited-coroutine leak asserted by
test_sync_read_refusing_coroutine_ops_leaves_no_unawaited_coroutine."""


@pytest.fixture
def reap_leaked_coroutines():
    """Collect coroutines a refused sync access left behind, so their "never awaited" warnings
    are not reported against whichever test happens to trigger the next garbage collection."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gc.collect()


# -- entry points (ACCESS-1, ACCESS-2) ----------------------------------------------------------


def test_zero_length_read_is_ok_and_touches_nothing():
    """ACCESS-1: len == 0 -> MEMTX_OK, no access."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    assert memory.read(0x1000, 0) == (b"", MEMTX_OK)
    assert dev.calls == []


def test_zero_length_write_is_ok_and_touches_nothing():
    """ACCESS-1: len == 0 -> MEMTX_OK, no access."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    assert memory.write(0x1000, b"") == MEMTX_OK
    assert dev.calls == []


def test_zero_length_access_to_a_hole_is_ok():
    """ACCESS-1: a zero-length access never reaches the unassigned region."""
    _, _, memory = new_machine()
    assert memory.read(0x5000, 0) == (b"", MEMTX_OK)
    assert memory.write(0x5000, b"") == MEMTX_OK


@pytest.mark.parametrize("length", [1, 3, 8, 13, 0x1001])
def test_read_always_returns_length_bytes(length):
    """ACCESS-6: every byte of the read buffer is written, even for a hole."""
    _, _, memory = new_machine()
    data, result = memory.read(0x10, length)
    assert data == bytes(length)
    assert result == MEMTX_DECODE_ERROR


@pytest.mark.parametrize(
    ("addr", "length"),
    [(-1, 1), (TWO64, 1), (TWO64 + 5, 4), (-1, 0), (TWO64, 0), (0, -1), (1.0, 1), (0, 2.0)],
)
def test_read_with_invalid_arguments_raises(addr, length):
    """Our API: invalid arguments raise InvalidArgumentError instead of QEMU's assertions."""
    _, _, memory = new_machine()
    with pytest.raises(InvalidArgumentError):
        memory.read(addr, length)


@pytest.mark.parametrize(
    ("addr", "data"),
    [(-1, b"x"), (TWO64, b"x"), (TWO64, b""), (-1, b""), (0, "ab"), (0, [1, 2]), (0, 5), (0, "")],
)
def test_write_with_invalid_arguments_raises(addr, data):
    """Our API: negative or >= 2**64 addresses and non-bytes data raise InvalidArgumentError."""
    sys_, system, memory = new_machine()
    system.add_subregion(0, sys_.ram("ram", 0x1000))
    with pytest.raises(InvalidArgumentError):
        memory.write(addr, data)


def test_last_byte_of_the_address_space_is_accessible():
    """ACCESS-2: addresses up to 2**64-1 are valid."""
    sys_, system, memory = new_machine()
    system.add_subregion(TWO64 - 0x1000, sys_.ram("top", 0x1000))
    assert memory.write(TWO64 - 1, b"\x5a") == MEMTX_OK
    assert memory.read(TWO64 - 1, 1) == (b"\x5a", MEMTX_OK)


# -- RAM (ACCESS-3, ACCESS-5) -------------------------------------------------------------------


def test_ram_read_is_clamped_at_range_end_and_continued_in_next_range():
    """ACCESS-3: a RAM piece stops at its FlatRange end; the loop re-translates."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("a", 0x10, data=bytes(range(0x00, 0x10))))
    system.add_subregion(0x1010, sys_.ram("b", 0x10, data=bytes(range(0x10, 0x20))))
    assert memory.read(0x100C, 8) == (bytes(range(0x0C, 0x14)), MEMTX_OK)


def test_ram_write_is_clamped_at_range_end_and_continued_in_next_range():
    """ACCESS-3: a RAM write is split at the FlatRange boundary."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("a", 0x10))
    system.add_subregion(0x1010, sys_.ram("b", 0x10))
    assert memory.write(0x100E, b"\xaa\xbb\xcc\xdd") == MEMTX_OK
    assert memory.read(0x100C, 8) == (b"\x00\x00\xaa\xbb\xcc\xdd\x00\x00", MEMTX_OK)


def test_ram_piece_stops_where_a_higher_priority_mmio_region_covers_it():
    """ACCESS-3: the clamp is at the FlatRange end, not the RAM region's end."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x100, data=bytes(range(0x100))))
    dev = map_device(sys_, system, 0x1040, 0x10, values={0: 0xBBAA}, priority=1)
    assert memory.read(0x103E, 4) == (b"\x3e\x3f\xaa\xbb", MEMTX_OK)
    assert dev.calls == [("read", 0, 2)]


def test_read_spanning_ram_hole_and_mmio():
    """ACCESS-6 / HOLE-1: RAM bytes, then zeros for the hole (DECODE_ERROR), then the device."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10, data=bytes(range(0x10))))
    dev = map_device(sys_, system, 0x1020, 0x10, values={0: 0x44332211})
    expected = b"\x0c\x0d\x0e\x0f" + bytes(16) + b"\x11\x22\x33\x44"
    assert memory.read(0x100C, 0x18) == (expected, MEMTX_DECODE_ERROR)
    assert dev.calls == [("read", 0, 4)]


def test_write_spanning_ram_hole_and_mmio():
    """ACCESS-6 / HOLE-1: RAM written, hole dropped (DECODE_ERROR), device gets its piece."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10))
    dev = map_device(sys_, system, 0x1020, 0x10)
    assert memory.write(0x100C, bytes(range(1, 0x19))) == MEMTX_DECODE_ERROR
    assert memory.read(0x100C, 4) == (b"\x01\x02\x03\x04", MEMTX_OK)
    assert dev.calls == [("write", 0, 4, 0x18171615)]


def test_ram_bytes_are_raw_on_a_big_endian_machine():
    """ACCESS-5 / ENDIAN-1: RAM/ROM are raw bytes, no conversion."""
    sys_, system, memory = new_machine(Endianness.BIG)
    system.add_subregion(0x1000, sys_.ram("ram", 0x10))
    memory.write(0x1000, b"\x12\x34\x56\x78")
    assert memory.read(0x1000, 4) == (b"\x12\x34\x56\x78", MEMTX_OK)


# -- address wrap-around (ACCESS-4) -------------------------------------------------------------


def test_read_wraps_at_2_64_and_continues_at_address_zero():
    """ACCESS-4: addr += l wraps at 2**64; a 6-byte read at 2**64-2 continues at address 0."""
    sys_, system, memory = new_machine()
    system.add_subregion(TWO64 - 0x10, sys_.ram("top", 0x10, data=bytes(range(0xE0, 0xF0))))
    system.add_subregion(0, sys_.ram("low", 0x10, data=bytes(range(0x10))))
    assert memory.read(TWO64 - 2, 6) == (b"\xee\xef\x00\x01\x02\x03", MEMTX_OK)


def test_write_wraps_at_2_64_and_continues_at_address_zero():
    """ACCESS-4: the write loop wraps at 2**64 as well."""
    sys_, system, memory = new_machine()
    system.add_subregion(TWO64 - 0x10, sys_.ram("top", 0x10))
    system.add_subregion(0, sys_.ram("low", 0x10))
    assert memory.write(TWO64 - 2, b"abcdef") == MEMTX_OK
    assert memory.read(TWO64 - 2, 2) == (b"ab", MEMTX_OK)
    assert memory.read(0, 4) == (b"cdef", MEMTX_OK)


def test_wrapped_read_into_a_hole_at_address_zero_is_decode_error():
    """ACCESS-4 / HOLE-1: the wrapped part reads the hole at 0 as zeros with DECODE_ERROR."""
    sys_, system, memory = new_machine()
    system.add_subregion(TWO64 - 0x10, sys_.ram("top", 0x10, data=b"\xff" * 0x10))
    assert memory.read(TWO64 - 2, 6) == (b"\xff\xff" + bytes(4), MEMTX_DECODE_ERROR)


def test_mmio_read_wraps_at_2_64():
    """ACCESS-4 / PIECE-2: the last aligned piece at the top, then the device at address 0."""
    sys_, system, memory = new_machine()
    top = map_device(sys_, system, TWO64 - 0x10, 0x10, name="top", values={0xE: 0xBBAA})
    low = map_device(sys_, system, 0, 0x10, name="low", values={0: 0x44332211})
    assert memory.read(TWO64 - 2, 6) == (b"\xaa\xbb\x11\x22\x33\x44", MEMTX_OK)
    assert top.calls == [("read", 0xE, 2)]
    assert low.calls == [("read", 0, 4)]


def test_mmio_piece_may_run_past_the_top_of_the_address_space():
    """ACCESS-3 / ACCESS-4: an aligned MMIO piece is not clipped, not even at 2**64."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, TWO64 - 2, 2, values={0: 0x44332211})
    assert memory.read(TWO64 - 2, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert dev.calls == [("read", 0, 4)]


def unaligned_byte_device_over_everything() -> tuple[AddressSpace, Recorder]:
    """A device that spans all 2**64 bytes, accepts unaligned accesses and implements bytes."""
    sys_ = MemorySystem()
    dev = Recorder({TWO64 - 2: 0xAA, TWO64 - 1: 0xBB, 0: 0xCC, 1: 0xDD})
    byte = AccessConstraints(1, 1, unaligned=True)
    root = sys_.mmio("all", TWO64, ops_for(dev, valid=AccessConstraints(unaligned=True), impl=byte))
    return sys_.address_space("memory", root), dev


def test_split_sub_access_offsets_wrap_at_2_64():
    """IMPL-1 / ACCESS-4: an unaligned 4-byte piece at 2**64-2 is one piece (not clipped), and
    its byte sub-accesses continue at offsets 0 and 1, as QEMU's u64 arithmetic does."""
    memory, dev = unaligned_byte_device_over_everything()
    assert memory.read(TWO64 - 2, 4) == (b"\xaa\xbb\xcc\xdd", MEMTX_OK)
    assert dev.calls == [
        ("read", TWO64 - 2, 1),
        ("read", TWO64 - 1, 1),
        ("read", 0, 1),
        ("read", 1, 1),
    ]


def test_split_sub_access_write_offsets_wrap_at_2_64():
    """IMPL-1 / ACCESS-4: the write's byte sub-accesses wrap to offsets 0 and 1 as well."""
    memory, dev = unaligned_byte_device_over_everything()
    assert memory.write(TWO64 - 2, b"\x01\x02\x03\x04") == MEMTX_OK
    assert dev.calls == [
        ("write", TWO64 - 2, 1, 1),
        ("write", TWO64 - 1, 1, 2),
        ("write", 0, 1, 3),
        ("write", 1, 1, 4),
    ]


# -- ROM (ROM-1, ROM-2) -------------------------------------------------------------------------


def test_rom_read_is_direct():
    """ROM-1: ROM reads are direct, like RAM."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.rom("rom", 0x10, data=bytes(range(0x10))))
    assert memory.read(0x1002, 4) == (b"\x02\x03\x04\x05", MEMTX_OK)


def test_rom_write_is_dropped_with_decode_error():
    """ROM-1: ROM writes take the unassigned ops -> DECODE_ERROR, contents unchanged."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.rom("rom", 0x10, data=bytes(range(0x10))))
    assert memory.write(0x1001, b"\xaa" * 7) == MEMTX_DECODE_ERROR
    assert memory.read(0x1000, 0x10) == (bytes(range(0x10)), MEMTX_OK)


def test_rom_write_error_does_not_stop_the_following_ram_piece():
    """ROM-1 / ACCESS-6: the ROM part is dropped, the loop continues and writes the RAM part."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.rom("rom", 0x10, data=bytes(range(0x10))))
    system.add_subregion(0x1010, sys_.ram("ram", 0x10))
    assert memory.write(0x100E, b"\xa1\xa2\xa3\xa4") == MEMTX_DECODE_ERROR
    assert memory.read(0x100E, 4) == (b"\x0e\x0f\xa3\xa4", MEMTX_OK)


def test_readonly_ram_leaf_rejects_writes():
    """REGION-8 / ROM-1: readonly on the RAM leaf itself makes it a ROM."""
    sys_, system, memory = new_machine()
    ram = sys_.ram("ram", 0x10)
    system.add_subregion(0x1000, ram)
    ram.set_readonly(True)
    assert memory.write(0x1000, b"\x5a") == MEMTX_DECODE_ERROR
    assert memory.read(0x1000, 1) == (b"\x00", MEMTX_OK)


def test_readonly_alias_above_ram_does_not_block_writes():
    """ROM-2: only the leaf's own readonly flag decides; the alias only flags the range."""
    sys_, system, memory = new_machine()
    ram = sys_.ram("ram", 0x100)
    alias = sys_.alias("ram-alias", ram, 0, 0x100)
    system.add_subregion(0x1000, alias)
    alias.set_readonly(True)
    assert memory.flatview.lookup(0x1000).readonly
    assert memory.write(0x1000, b"\x5a\xa5") == MEMTX_OK
    assert memory.read(0x1000, 2) == (b"\x5a\xa5", MEMTX_OK)


def test_readonly_container_above_ram_does_not_block_writes():
    """ROM-2: readonly inherited from a container does not make RAM writes fail."""
    sys_, system, memory = new_machine()
    box = sys_.container("box", 0x1000)
    box.add_subregion(0, sys_.ram("ram", 0x100))
    system.add_subregion(0x1000, box)
    box.set_readonly(True)
    assert memory.flatview.lookup(0x1000).readonly
    assert memory.write(0x1010, b"\x5a") == MEMTX_OK
    assert memory.read(0x1010, 1) == (b"\x5a", MEMTX_OK)


# -- unassigned memory and the PC I/O space (HOLE-1 to HOLE-3) ----------------------------------


def test_hole_read_returns_zeros_with_decode_error():
    """HOLE-1: unassigned reads return 0 with MEMTX_DECODE_ERROR."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10, data=b"\xff" * 0x10))
    assert memory.read(0x2001, 8) == (bytes(8), MEMTX_DECODE_ERROR)


def test_hole_write_is_dropped_with_decode_error():
    """HOLE-1: unassigned writes are dropped with MEMTX_DECODE_ERROR."""
    _, _, memory = new_machine()
    assert memory.write(0x2001, b"\x01\x02\x03") == MEMTX_DECODE_ERROR


def test_hole_piece_is_not_clipped_where_a_device_begins():
    """HOLE-1 / ACCESS-3: the unassigned region is not RAM, so its aligned 4-byte piece covers
    the first two bytes of the device behind it; the device is not called."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1002, 0x10, values={0: 0xFFFF})
    assert memory.read(0x1000, 4) == (bytes(4), MEMTX_DECODE_ERROR)
    assert dev.calls == []


@pytest.mark.parametrize("length", [1, 2, 4, 8])
def test_io_space_hole_reads_all_ones_ok(length):
    """HOLE-3: holes in the PC I/O space read all-ones with MEMTX_OK."""
    _, _, io_as = io_machine()
    assert io_as.read(0x80, length) == (b"\xff" * length, MEMTX_OK)


def test_io_space_unaligned_hole_read_is_all_ones_ok():
    """HOLE-3 / PIECE-2: an inl at an odd port is split (1, 2, 1); every piece answers all-ones."""
    _, _, io_as = io_machine()
    assert io_as.read(0x61, 4) == (b"\xff" * 4, MEMTX_OK)


def test_io_space_hole_write_is_ignored_ok():
    """HOLE-3: writes to I/O holes are ignored with MEMTX_OK."""
    _, _, io_as = io_machine()
    assert io_as.write(0x80, b"\x12\x34") == MEMTX_OK
    assert io_as.read(0x80, 2) == (b"\xff\xff", MEMTX_OK)


def test_io_port_read_spanning_background_and_device():
    """HOLE-3 / PIECE-2: the root fills holes; an inw at 0x5f reads ff from it, then the device."""
    sys_, io, io_as = io_machine()
    dev = map_device(sys_, io, 0x60, 1, name="kbd", values={0: 0x42})
    assert io_as.read(0x5F, 2) == (b"\xff\x42", MEMTX_OK)
    assert dev.calls == [("read", 0, 1)]


def test_io_space_port_beyond_64k_is_memory_style_unassigned():
    """HOLE-3: ports >= 0x10000 are outside the 64 KiB root -> 0, DECODE_ERROR."""
    _, _, io_as = io_machine()
    assert io_as.read(0x10000, 1) == (b"\x00", MEMTX_DECODE_ERROR)


def test_mmio_region_without_ops_reads_zero_and_hides_lower_ram():
    """HOLE-2: a reservation answers like a hole but occupies its range."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x100, data=b"\xee" * 0x100))
    system.add_subregion(0x1000, sys_.mmio("reserved", 0x10), 1)
    assert memory.read(0x1000, 4) == (bytes(4), MEMTX_DECODE_ERROR)
    assert memory.read(0x1010, 1) == (b"\xee", MEMTX_OK)


def test_mmio_region_without_ops_drops_writes_and_protects_lower_ram():
    """HOLE-2: writes to a reservation fail and do not reach the RAM below it."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x100, data=b"\xee" * 0x100))
    reserved = sys_.mmio("reserved", 0x10)
    system.add_subregion(0x1000, reserved, 1)
    assert memory.write(0x1000, b"\x01\x02\x03\x04") == MEMTX_DECODE_ERROR
    system.del_subregion(reserved)
    assert memory.read(0x1000, 4) == (b"\xee" * 4, MEMTX_OK)


# -- memory_access_size (PIECE-1 to PIECE-3) ----------------------------------------------------


def test_default_ops_never_see_more_than_four_bytes():
    """PIECE-1: valid.max 0 counts as 4, so an 8-byte read is two 4-byte dispatches."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, values={0: 0x44332211, 4: 0x88776655})
    assert memory.read(0x1000, 8) == (bytes.fromhex("1122334455667788"), MEMTX_OK)
    assert dev.calls == [("read", 0, 4), ("read", 4, 4)]


def test_pieces_are_naturally_aligned():
    """PIECE-2: 8 bytes at offset 0x1001 -> 1 @0x1001, 2 @0x1002, 4 @0x1004, 1 @0x1008."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x10000, 0x2000)
    assert memory.read(0x11001, 8) == (bytes(8), MEMTX_OK)
    assert dev.calls == [
        ("read", 0x1001, 1),
        ("read", 0x1002, 2),
        ("read", 0x1004, 4),
        ("read", 0x1008, 1),
    ]


def test_write_pieces_are_naturally_aligned_and_carry_their_bytes():
    """PIECE-2 / ENDIAN-1: each aligned piece gets its own bytes, little-endian for an LE device."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x10000, 0x2000, endianness=Endianness.LITTLE)
    assert memory.write(0x11001, bytes(range(1, 9))) == MEMTX_OK
    assert dev.calls == [
        ("write", 0x1001, 1, 0x01),
        ("write", 0x1002, 2, 0x0302),
        ("write", 0x1004, 4, 0x07060504),
        ("write", 0x1008, 1, 0x08),
    ]


def test_four_bytes_at_offset_two_are_two_halves():
    """PIECE-2: 4 bytes at offset 2 -> 2 bytes @2, then 2 bytes @4."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    memory.read(0x1002, 4)
    assert dev.calls == [("read", 2, 2), ("read", 4, 2)]


def test_odd_remainder_is_split_into_powers_of_two():
    """PIECE-3: 3 bytes at offset 0 -> pow2floor(3) = 2, then 1."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, values={0: 0x2211, 2: 0x33})
    assert memory.read(0x1000, 3) == (b"\x11\x22\x33", MEMTX_OK)
    assert dev.calls == [("read", 0, 2), ("read", 2, 1)]


def test_valid_max_eight_allows_eight_byte_pieces():
    """PIECE-1: valid.max_access_size 8 lets an 8-byte piece through (impl.max 8: one call)."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        values={0: 0x8877665544332211},
        valid=AccessConstraints(max_access_size=8),
        impl=AccessConstraints(max_access_size=8),
    )
    assert memory.read(0x1000, 8) == (bytes.fromhex("1122334455667788"), MEMTX_OK)
    assert dev.calls == [("read", 0, 8)]


def test_impl_unaligned_lifts_the_alignment_clamp():
    """PIECE-2: with impl.unaligned a 4-byte access at offset 1 is one piece."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        values={1: 0x44332211},
        valid=AccessConstraints(unaligned=True),
        impl=AccessConstraints(unaligned=True),
    )
    assert memory.read(0x1001, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert dev.calls == [("read", 1, 4)]


def test_valid_unaligned_alone_keeps_pieces_aligned():
    """PIECE-2: memory_access_size looks at impl.unaligned, not valid.unaligned."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, valid=AccessConstraints(unaligned=True))
    memory.read(0x1001, 4)
    assert dev.calls == [("read", 1, 1), ("read", 2, 2), ("read", 4, 1)]


# -- MMIO is not clipped at the region end (ACCESS-3) -------------------------------------------


def test_mmio_read_is_not_clipped_at_region_end():
    """ACCESS-3: a 4-byte read at the start of a 2-byte MMIO region reaches it as one 4-byte access;
    the RAM behind it is not read."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, 2, values={0: 0x44332211})
    system.add_subregion(0x1002, sys_.ram("ram", 0x10, data=b"\xee" * 0x10))
    assert memory.read(0x1000, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert dev.calls == [("read", 0, 4)]


def test_mmio_write_is_not_clipped_at_region_end():
    """ACCESS-3: the device gets all 4 bytes; the RAM behind it is untouched."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, 2)
    system.add_subregion(0x1002, sys_.ram("ram", 0x10))
    assert memory.write(0x1000, b"\x11\x22\x33\x44") == MEMTX_OK
    assert dev.calls == [("write", 0, 4, 0x44332211)]
    assert memory.read(0x1002, 2) == (b"\x00\x00", MEMTX_OK)


# -- memory_region_access_valid (VALID-1 to VALID-3) --------------------------------------------


def test_accepts_veto_gives_decode_error_and_zero_without_callback():
    """VALID-1 / VALID-2: a rejected piece reads 0 with DECODE_ERROR, no read callback."""
    sys_, system, memory = new_machine()
    asked: list[tuple[int, int, bool]] = []

    def accepts(offset: int, size: int, is_write: bool, attrs: MemTxAttrs) -> bool:
        asked.append((offset, size, is_write))
        return offset != 4

    dev = map_device(sys_, system, 0x1000, values={0: 0x44332211}, accepts=accepts)
    assert memory.read(0x1000, 8) == (b"\x11\x22\x33\x44" + bytes(4), MEMTX_DECODE_ERROR)
    assert asked == [(0, 4, False), (4, 4, False)]
    assert dev.calls == [("read", 0, 4)]


def test_accepts_veto_drops_the_write_piece():
    """VALID-2: a rejected write piece is dropped with DECODE_ERROR."""
    sys_, system, memory = new_machine()
    asked: list[tuple[int, int, bool]] = []

    def accepts(offset: int, size: int, is_write: bool, attrs: MemTxAttrs) -> bool:
        asked.append((offset, size, is_write))
        return offset != 0

    dev = map_device(sys_, system, 0x1000, accepts=accepts)
    assert memory.write(0x1000, bytes(range(1, 9))) == MEMTX_DECODE_ERROR
    assert asked == [(0, 4, True), (4, 4, True)]
    assert dev.calls == [("write", 4, 4, 0x08070605)]


def test_attrs_are_forwarded_to_accepts_and_ops():
    """RESULT-2: all attribute fields are forwarded to the callbacks and valid.accepts."""
    sys_, system, memory = new_machine()
    seen: list[MemTxAttrs] = []

    def accepts(offset: int, size: int, is_write: bool, attrs: MemTxAttrs) -> bool:
        seen.append(attrs)
        return True

    dev = map_device(sys_, system, 0x1000, accepts=accepts)
    attrs = MemTxAttrs(requester_id=0x42, secure=True, user=True)
    memory.read(0x1000, 1, attrs)
    memory.write(0x1000, b"\x00", attrs)
    assert seen == [attrs, attrs]
    assert dev.attrs == [attrs, attrs]


def test_access_below_valid_min_is_decode_error_without_callback():
    """VALID-2: a 1-byte access to a valid.min 4 device -> 0, DECODE_ERROR."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, values={0: 0xFF}, valid=AccessConstraints(4, 4))
    assert memory.read(0x1000, 1) == (b"\x00", MEMTX_DECODE_ERROR)
    assert memory.write(0x1000, b"\x01") == MEMTX_DECODE_ERROR
    assert dev.calls == []


def test_misaligned_access_to_valid_min_four_device_is_decode_error():
    """VALID-2: 4 bytes at offset 2 become two 2-byte pieces, both below valid.min 4."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, valid=AccessConstraints(4, 4))
    assert memory.read(0x1002, 4) == (bytes(4), MEMTX_DECODE_ERROR)
    assert dev.calls == []


def test_valid_max_zero_ignores_valid_min():
    """VALID-1: valid.max_access_size == 0 accepts every size, min is ignored."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_, system, 0x1000, values={0: 0x5A}, valid=AccessConstraints(min_access_size=4)
    )
    assert memory.read(0x1000, 1) == (b"\x5a", MEMTX_OK)
    assert dev.calls == [("read", 0, 1)]


@pytest.mark.parametrize(
    ("valid", "offset", "size", "expected"),
    [
        (AccessConstraints(), 2, 4, False),  # unaligned
        (AccessConstraints(unaligned=True), 2, 4, True),
        (AccessConstraints(max_access_size=2), 0, 4, False),  # above max
        (AccessConstraints(2, 4), 1, 1, False),  # below min
        (AccessConstraints(min_access_size=8), 0, 1, True),  # max 0 ignores min
        (AccessConstraints(2, 4), 0, 4, True),
    ],
)
def test_memory_region_access_valid_rules(valid, offset, size, expected):
    """VALID-1, checked on the model's access_valid directly (via address_space_rw
    the unaligned and above-max cases cannot occur)."""
    ops = MemoryRegionOps(read=Recorder().read, valid=valid)
    assert access_valid(ops, offset, size, False, MEMTXATTRS_UNSPECIFIED) is expected


def test_accepts_runs_before_the_alignment_check():
    """VALID-1: accepts is evaluated first, even for an access that is then unaligned."""
    asked: list[tuple[int, int, bool]] = []

    def accepts(offset: int, size: int, is_write: bool, attrs: MemTxAttrs) -> bool:
        asked.append((offset, size, is_write))
        return True

    ops = MemoryRegionOps(read=Recorder().read, accepts=accepts)
    assert access_valid(ops, 2, 4, True, MEMTXATTRS_UNSPECIFIED) is False
    assert asked == [(2, 4, True)]


def test_raising_accepts_fails_the_piece_without_crashing_the_bus():
    """Our choice (a misbehaving in-process device must not crash the bus): an accepts() that
    raises fails that piece with an error bit and no read callback; the loop continues."""
    sys_, system, memory = new_machine()

    def accepts(offset: int, size: int, is_write: bool, attrs: MemTxAttrs) -> bool:
        if offset == 0:
            raise RuntimeError("accepts fault")
        return True

    dev = map_device(sys_, system, 0x1000, values={4: 0x88776655}, accepts=accepts)
    data, result = memory.read(0x1000, 8)
    assert data == bytes(4) + b"\x55\x66\x77\x88"
    assert result in (MEMTX_ERROR, MEMTX_DECODE_ERROR)
    assert dev.calls == [("read", 4, 4)]


# -- access_with_adjusted_size (IMPL-1 to IMPL-3) -----------------------------------------------

VALID_8 = AccessConstraints(max_access_size=8)


def test_eight_byte_read_split_by_impl_max_le():
    """IMPL-2: read(a,4), read(a+4,4); LE value = lo | hi << 32."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        values={0: 0x11223344, 4: 0x55667788},
        valid=VALID_8,
        endianness=Endianness.LITTLE,
    )
    assert memory.read(0x1000, 8) == (bytes.fromhex("4433221188776655"), MEMTX_OK)
    assert dev.calls == [("read", 0, 4), ("read", 4, 4)]


def test_eight_byte_read_split_by_impl_max_be():
    """IMPL-2: BE value = first << 32 | second, laid out big-endian on the bus."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        values={0: 0x11223344, 4: 0x55667788},
        valid=VALID_8,
        endianness=Endianness.BIG,
    )
    assert memory.read(0x1000, 8) == (bytes.fromhex("1122334455667788"), MEMTX_OK)
    assert dev.calls == [("read", 0, 4), ("read", 4, 4)]


def test_eight_byte_write_split_by_impl_max_le():
    """IMPL-2: LE write(a, v & 0xffffffff), write(a+4, v >> 32)."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, valid=VALID_8, endianness=Endianness.LITTLE)
    assert memory.write(0x1000, bytes(range(1, 9))) == MEMTX_OK
    assert dev.calls == [("write", 0, 4, 0x04030201), ("write", 4, 4, 0x08070605)]


def test_eight_byte_write_split_by_impl_max_be():
    """IMPL-2: BE write(a, v >> 32), write(a+4, v & 0xffffffff)."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, valid=VALID_8, endianness=Endianness.BIG)
    assert memory.write(0x1000, bytes(range(1, 9))) == MEMTX_OK
    assert dev.calls == [("write", 0, 4, 0x01020304), ("write", 4, 4, 0x05060708)]


@pytest.mark.parametrize("endianness", [Endianness.LITTLE, Endianness.BIG])
def test_byte_wide_impl_reads_bus_bytes_in_address_order(endianness):
    """IMPL-2 (4-byte read, impl.max 1): LE b0|b1<<8..., BE b0<<24|...; either way the
    bus sees the device's bytes in address order."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        values={0: 0x11, 1: 0x22, 2: 0x33, 3: 0x44},
        impl=AccessConstraints(max_access_size=1),
        endianness=endianness,
    )
    assert memory.read(0x1000, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert dev.calls == [("read", 0, 1), ("read", 1, 1), ("read", 2, 1), ("read", 3, 1)]


@pytest.mark.parametrize("endianness", [Endianness.LITTLE, Endianness.BIG])
def test_byte_wide_impl_writes_bus_bytes_in_address_order(endianness):
    """IMPL-1: split writes go in ascending addresses, each with its own bus byte."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_, system, 0x1000, impl=AccessConstraints(max_access_size=1), endianness=endianness
    )
    assert memory.write(0x1000, b"\x11\x22\x33\x44") == MEMTX_OK
    assert dev.calls == [
        ("write", 0, 1, 0x11),
        ("write", 1, 1, 0x22),
        ("write", 2, 1, 0x33),
        ("write", 3, 1, 0x44),
    ]


def test_split_read_masks_each_answer_to_the_implemented_size():
    """IMPL-2: each sub-access value is masked to asz bytes before it is placed."""
    sys_, system, memory = new_machine()
    map_device(
        sys_,
        system,
        0x1000,
        values={0: 0xAB11, 1: 0xCD22},
        impl=AccessConstraints(max_access_size=1),
        endianness=Endianness.LITTLE,
    )
    assert memory.read(0x1000, 2) == (b"\x11\x22", MEMTX_OK)


def test_read_value_is_truncated_to_the_access_size():
    """ENDIAN-1: only the low `l` bytes of the value reach the buffer."""
    sys_, system, memory = new_machine()
    map_device(sys_, system, 0x1000, values={0: 0x1122334455, 4: -1})
    assert memory.read(0x1000, 6) == (b"\x55\x44\x33\x22\xff\xff", MEMTX_OK)


def test_widened_read_keeps_the_unaligned_address():
    """IMPL-3: a 1-byte read with impl.min 4 is read(a, 4), a not aligned down."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, impl=AccessConstraints(min_access_size=4))
    memory.read(0x1003, 1)
    assert dev.calls == [("read", 3, 4)]


def test_widened_le_read_returns_the_low_byte():
    """IMPL-3: LE widened read keeps the full value; the caller uses the low byte."""
    sys_, system, memory = new_machine()
    map_device(
        sys_,
        system,
        0x1000,
        values={3: 0x11223344},
        impl=AccessConstraints(min_access_size=4),
        endianness=Endianness.LITTLE,
    )
    assert memory.read(0x1003, 1) == (b"\x44", MEMTX_OK)


def test_widened_be_read_returns_the_top_byte():
    """IMPL-3: a 1-byte BE read with impl.min 4 yields t >> 24."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        values={0: 0x11223344},
        impl=AccessConstraints(min_access_size=4),
        endianness=Endianness.BIG,
    )
    assert memory.read(0x1000, 1) == (b"\x11", MEMTX_OK)
    assert dev.calls == [("read", 0, 4)]


def test_widened_be_read_from_two_byte_impl_returns_the_high_byte():
    """IMPL-3: 1-byte BE read with impl.min 2 -> read(a, 2), value t >> 8."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        values={0: 0xABCD},
        impl=AccessConstraints(min_access_size=2),
        endianness=Endianness.BIG,
    )
    assert memory.read(0x1000, 1) == (b"\xab", MEMTX_OK)
    assert dev.calls == [("read", 0, 2)]


def test_widened_le_write_puts_data_in_the_low_lane():
    """IMPL-3: LE 2-byte write with impl.min 4 -> write(a, v, 4), no read-modify-write."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        impl=AccessConstraints(min_access_size=4),
        endianness=Endianness.LITTLE,
    )
    assert memory.write(0x1002, b"\xab\xcd") == MEMTX_OK
    assert dev.calls == [("write", 2, 4, 0xCDAB)]


def test_widened_be_write_is_shifted_into_the_high_lane():
    """IMPL-3: BE 2-byte write with impl.min 4 -> write(a, v << 16, 4)."""
    sys_, system, memory = new_machine()
    dev = map_device(
        sys_,
        system,
        0x1000,
        impl=AccessConstraints(min_access_size=4),
        endianness=Endianness.BIG,
    )
    assert memory.write(0x1002, b"\xab\xcd") == MEMTX_OK
    assert dev.calls == [("write", 2, 4, 0xABCD0000)]


# -- endianness (ENDIAN-1, ENDIAN-2) ------------------------------------------------------------


def test_native_device_follows_a_little_endian_machine():
    """ENDIAN-2: NATIVE device returning 0x12345678 -> bus bytes 78 56 34 12."""
    sys_, system, memory = new_machine(Endianness.LITTLE)
    map_device(sys_, system, 0x1000, values={0: 0x12345678})
    assert memory.read(0x1000, 4) == (b"\x78\x56\x34\x12", MEMTX_OK)


def test_native_device_follows_a_big_endian_machine():
    """ENDIAN-1: NATIVE resolves to the machine's order -> bus bytes 12 34 56 78."""
    sys_, system, memory = new_machine(Endianness.BIG)
    map_device(sys_, system, 0x1000, values={0: 0x12345678})
    assert memory.read(0x1000, 4) == (b"\x12\x34\x56\x78", MEMTX_OK)


def test_big_endian_device_on_a_little_endian_machine():
    """ENDIAN-2: BIG device returning 0x12345678 -> bus 12 34 56 78."""
    sys_, system, memory = new_machine(Endianness.LITTLE)
    map_device(sys_, system, 0x1000, values={0: 0x12345678}, endianness=Endianness.BIG)
    assert memory.read(0x1000, 4) == (b"\x12\x34\x56\x78", MEMTX_OK)


def test_little_endian_device_on_a_big_endian_machine():
    """ENDIAN-1: endianness is device-relative, the machine's order does not matter for LITTLE."""
    sys_, system, memory = new_machine(Endianness.BIG)
    map_device(sys_, system, 0x1000, values={0: 0x12345678}, endianness=Endianness.LITTLE)
    assert memory.read(0x1000, 4) == (b"\x78\x56\x34\x12", MEMTX_OK)


def test_native_device_write_on_a_big_endian_machine():
    """ENDIAN-1: the device receives int.from_bytes(bus bytes, device order)."""
    sys_, system, memory = new_machine(Endianness.BIG)
    dev = map_device(sys_, system, 0x1000)
    assert memory.write(0x1000, b"\x12\x34\x56\x78") == MEMTX_OK
    assert dev.calls == [("write", 0, 4, 0x12345678)]


def test_native_device_write_on_a_little_endian_machine():
    """ENDIAN-1: NATIVE on a little-endian machine is little-endian."""
    sys_, system, memory = new_machine(Endianness.LITTLE)
    dev = map_device(sys_, system, 0x1000)
    assert memory.write(0x1000, b"\x12\x34\x56\x78") == MEMTX_OK
    assert dev.calls == [("write", 0, 4, 0x78563412)]


def test_native_device_split_write_on_a_big_endian_machine():
    """IMPL-2 / ENDIAN-1: a NATIVE device on a BE machine splits like a BE device."""
    sys_, system, memory = new_machine(Endianness.BIG)
    dev = map_device(sys_, system, 0x1000, valid=VALID_8)
    assert memory.write(0x1000, bytes(range(1, 9))) == MEMTX_OK
    assert dev.calls == [("write", 0, 4, 0x01020304), ("write", 4, 4, 0x05060708)]


# -- results (RESULT-1 to RESULT-3, ACCESS-6) ---------------------------------------------------


def test_results_are_or_combined_across_pieces():
    """ACCESS-6 / RESULT-1: a device ERROR piece and a hole DECODE_ERROR piece give
    ERROR | DECODE_ERROR; the device's data is still used."""
    sys_, system, memory = new_machine()
    map_device(sys_, system, 0x1000, 4, values={0: (0x44332211, MemTxResult.ERROR)})
    assert memory.read(0x1000, 8) == (
        b"\x11\x22\x33\x44" + bytes(4),
        MEMTX_ERROR | MEMTX_DECODE_ERROR,
    )


def test_read_loop_continues_after_an_error_piece():
    """ACCESS-6: the loop never stops early; the second piece is still read."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, values={0: (0, MEMTX_ERROR), 4: 0x88776655})
    assert memory.read(0x1000, 8) == (bytes(4) + b"\x55\x66\x77\x88", MEMTX_ERROR)
    assert dev.calls == [("read", 0, 4), ("read", 4, 4)]


def test_write_loop_continues_after_an_error_piece():
    """ACCESS-6: a write op answering an int result; the next piece is still written."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    dev.write_results = {0: 1}
    assert memory.write(0x1000, bytes(range(1, 9))) == MEMTX_ERROR
    assert dev.calls == [("write", 0, 4, 0x04030201), ("write", 4, 4, 0x08070605)]


def test_read_op_may_return_a_value_and_result_tuple():
    """RESULT-3: (value, MemTxResult) answers carry the device's error bits."""
    sys_, system, memory = new_machine()
    map_device(sys_, system, 0x1000, values={0: (0x5A, MemTxResult.DECODE_ERROR)})
    assert memory.read(0x1000, 1) == (b"\x5a", MEMTX_DECODE_ERROR)


@LEAKS_COROUTINES
@pytest.mark.parametrize("answer", [MemTxResult.OK, MemTxResult.ERROR])
def test_write_op_may_return_a_memtxresult(answer, reap_leaked_coroutines):
    """RESULT-3 / MemoryRegionOps contract: write returns None or a MemTxResult."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    dev.write_results = {0: answer}
    assert memory.write(0x1000, b"\x01") == answer
    assert dev.calls == [("write", 0, 1, 0x01)]


async def test_write_op_returning_memtxresult_ok_is_ok_in_write_async():
    """MemoryRegionOps contract: a plain write op answering MemTxResult.OK succeeds."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    dev.write_results = {0: MemTxResult.OK}
    assert await memory.write_async(0x1000, b"\x01") == MEMTX_OK


def test_raising_read_op_is_memtx_error_for_that_piece():
    """Our choice: an op that raises fails its piece with MEMTX_ERROR (value 0); the loop goes
    on (ACCESS-6)."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, values={0: raises, 4: 0x88776655})
    assert memory.read(0x1000, 8) == (bytes(4) + b"\x55\x66\x77\x88", MEMTX_ERROR)
    assert dev.calls == [("read", 0, 4), ("read", 4, 4)]


def test_raising_write_op_is_memtx_error_for_that_piece():
    """Our choice: a raising write op is MEMTX_ERROR for its piece; the loop goes on (ACCESS-6)."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    dev.write_results = {0: raises}
    assert memory.write(0x1000, bytes(range(1, 9))) == MEMTX_ERROR
    assert dev.calls == [("write", 0, 4, 0x04030201), ("write", 4, 4, 0x08070605)]


@pytest.mark.parametrize("junk", [(1, 2, 3), ("x", MEMTX_OK), ((), MEMTX_OK)])
def test_read_op_returning_a_malformed_tuple_is_memtx_error(junk):
    """Our choice: a malformed answer is MEMTX_ERROR with value 0 for that piece."""
    sys_, system, memory = new_machine()
    map_device(sys_, system, 0x1000, values={0: junk, 4: 0x88776655})
    assert memory.read(0x1000, 8) == (bytes(4) + b"\x55\x66\x77\x88", MEMTX_ERROR)


@LEAKS_COROUTINES
@pytest.mark.parametrize("junk", [None, "junk", 1.5])
def test_read_op_returning_junk_is_memtx_error(junk, reap_leaked_coroutines):
    """Our choice: a junk answer from a plain read op is MEMTX_ERROR with value 0."""
    sys_, system, memory = new_machine()
    map_device(sys_, system, 0x1000, values={0: junk, 4: 0x88776655})
    assert memory.read(0x1000, 8) == (bytes(4) + b"\x55\x66\x77\x88", MEMTX_ERROR)


@LEAKS_COROUTINES
def test_write_op_returning_junk_is_memtx_error(reap_leaked_coroutines):
    """Our choice: a junk answer from a plain write op is MEMTX_ERROR for that piece."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    dev.write_results = {0: "junk"}
    assert memory.write(0x1000, b"\x01") == MEMTX_ERROR


async def test_read_op_returning_junk_is_memtx_error_in_read_async():
    """Our choice: with read_async, a junk answer still fails only its piece."""
    sys_, system, memory = new_machine()
    map_device(sys_, system, 0x1000, values={0: "junk", 4: 0x88776655})
    assert await memory.read_async(0x1000, 8) == (bytes(4) + b"\x55\x66\x77\x88", MEMTX_ERROR)


# -- ROM devices (ROM-3) ------------------------------------------------------------------------


def romd_machine(
    values: dict[int, Any] | None = None,
) -> tuple[MemorySystem, MemoryRegion, AddressSpace, MemoryRegion, Recorder]:
    sys_, system, memory = new_machine()
    dev = Recorder(values)
    flash = sys_.romd("flash", 0x100, ops_for(dev), data=bytes(range(0x100)))
    system.add_subregion(0x1000, flash)
    return sys_, system, memory, flash, dev


def test_romd_read_is_direct_without_calling_ops():
    """ROM-3: in romd mode (the default) reads come from the backing store."""
    _, _, memory, _, dev = romd_machine()
    assert memory.read(0x1010, 4) == (b"\x10\x11\x12\x13", MEMTX_OK)
    assert dev.calls == []


def test_romd_write_goes_to_ops_and_leaves_the_backing_store():
    """ROM-3: writes always go to ops.write through the MMIO path."""
    _, _, memory, _, dev = romd_machine()
    assert memory.write(0x1010, b"\xaa\xbb\xcc\xdd") == MEMTX_OK
    assert dev.calls == [("write", 0x10, 4, 0xDDCCBBAA)]
    assert memory.read(0x1010, 4) == (b"\x10\x11\x12\x13", MEMTX_OK)


def test_romd_direct_read_is_not_clamped_at_the_range_end():
    """ACCESS-3: a romd direct read runs past its FlatRange into its own backing store, not into
    the higher-priority RAM that covers the rest of the region."""
    sys_, system, memory, _, _ = romd_machine()
    system.add_subregion(0x1080, sys_.ram("over", 0x80, data=b"\xee" * 0x80), 1)
    assert memory.read(0x107E, 4) == (b"\x7e\x7f\x80\x81", MEMTX_OK)


def test_romd_direct_read_stops_at_the_backing_end_and_continues():
    """ACCESS-3: a direct romd piece is clamped by the block size; the loop goes on."""
    sys_, system, memory = new_machine()
    dev = Recorder()
    system.add_subregion(0x1000, sys_.romd("flash", 0x10, ops_for(dev), data=bytes(range(0x10))))
    system.add_subregion(0x1010, sys_.ram("ram", 0x10, data=bytes(range(0x10, 0x20))))
    assert memory.read(0x100E, 4) == (b"\x0e\x0f\x10\x11", MEMTX_OK)
    assert dev.calls == []


def test_romd_mode_off_sends_reads_to_ops():
    """ROM-3: after set_romd(False) reads go to ops.read."""
    _, _, memory, flash, dev = romd_machine(values={0x10: 0x44332211})
    flash.set_romd(False)
    assert memory.read(0x1010, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert dev.calls == [("read", 0x10, 4)]


def test_romd_mode_back_on_reads_direct_again():
    """ROM-3: set_romd(True) restores direct reads."""
    _, _, memory, flash, dev = romd_machine(values={0x10: 0x44332211})
    flash.set_romd(False)
    flash.set_romd(True)
    assert memory.read(0x1010, 4) == (b"\x10\x11\x12\x13", MEMTX_OK)
    assert dev.calls == []


# -- attrs.memory (ACCESS-7) --------------------------------------------------------------------


def test_memory_attr_refuses_an_mmio_read_without_callback():
    """ACCESS-7: first piece non-RAM -> ACCESS_ERROR, nothing accessed."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, values={0: 0x44332211})
    assert memory.read(0x1000, 4, MEMORY_ONLY) == (bytes(4), MEMTX_ACCESS_ERROR)
    assert dev.calls == []


def test_memory_attr_refuses_an_mmio_write_without_callback():
    """ACCESS-7: attrs.memory write to MMIO -> ACCESS_ERROR, no callback."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000)
    assert memory.write(0x1000, b"\x01\x02", MEMORY_ONLY) == MEMTX_ACCESS_ERROR
    assert dev.calls == []


def test_memory_attr_refuses_a_hole_with_access_error():
    """ACCESS-7: the unassigned region is not RAM, so the refusal wins over DECODE_ERROR."""
    _, _, memory = new_machine()
    assert memory.read(0x1000, 4, MEMORY_ONLY) == (bytes(4), MEMTX_ACCESS_ERROR)
    assert memory.write(0x1000, b"\x01", MEMORY_ONLY) == MEMTX_ACCESS_ERROR


def test_memory_attr_refuses_a_romd_region_even_in_romd_mode():
    """REGION-6 / ACCESS-7: a ROM device has ram False, so attrs.memory refuses it."""
    _, _, memory, _, dev = romd_machine()
    assert memory.read(0x1010, 4, MEMORY_ONLY) == (bytes(4), MEMTX_ACCESS_ERROR)
    assert dev.calls == []


def test_memory_attr_allows_ram_and_rom():
    """ACCESS-7: only non-RAM pieces are refused; ROM has ram True."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10, data=b"\x11" * 0x10))
    system.add_subregion(0x2000, sys_.rom("rom", 0x10, data=b"\x22" * 0x10))
    assert memory.write(0x1000, b"\x33", MEMORY_ONLY) == MEMTX_OK
    assert memory.read(0x1000, 2, MEMORY_ONLY) == (b"\x33\x11", MEMTX_OK)
    assert memory.read(0x2000, 2, MEMORY_ONLY) == (b"\x22\x22", MEMTX_OK)


def test_memory_attr_first_piece_refusal_leaves_later_ram_untouched():
    """ACCESS-7: a refused first translation returns at once; the RAM after it is not read
    or written."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10, data=b"\x11" * 0x10))
    assert memory.read(0xFFC, 8, MEMORY_ONLY) == (bytes(8), MEMTX_ACCESS_ERROR)
    assert memory.write(0xFFC, b"\xaa" * 8, MEMORY_ONLY) == MEMTX_ACCESS_ERROR
    assert memory.read(0x1000, 4) == (b"\x11" * 4, MEMTX_OK)


def test_memory_attr_later_non_ram_piece_is_access_error():
    """ACCESS-7: RAM bytes are read, the later MMIO piece is ACCESS_ERROR and left zero."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10, data=bytes(range(0x10))))
    dev = map_device(sys_, system, 0x1010, 0x10, values={0: 0x44332211})
    assert memory.read(0x100C, 8, MEMORY_ONLY) == (
        b"\x0c\x0d\x0e\x0f" + bytes(4),
        MEMTX_ACCESS_ERROR,
    )
    assert dev.calls == []


def test_memory_attr_later_non_ram_write_piece_is_access_error():
    """ACCESS-7: the RAM part is written, the MMIO part is refused without a callback."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10))
    dev = map_device(sys_, system, 0x1010, 0x10)
    assert memory.write(0x100C, bytes(range(0xA0, 0xA8)), MEMORY_ONLY) == MEMTX_ACCESS_ERROR
    assert memory.read(0x100C, 4) == (b"\xa0\xa1\xa2\xa3", MEMTX_OK)
    assert dev.calls == []


# -- re-entrancy guard (GUARD-1 to GUARD-3) -----------------------------------------------------


class Owner:
    """A device identity for the re-entrancy guard."""

    def __init__(self, name: str) -> None:
        self.name = name


def nesting_device(
    sys_: MemorySystem,
    container: MemoryRegion,
    addr: int,
    owner: Any,
    nested: Callable[[], Any],
    log: list[Any],
    value: int = 0x44332211,
) -> None:
    """Map a device whose read callback makes ``nested()`` and logs what it returned."""

    def read(offset: int, size: int, attrs: MemTxAttrs) -> int:
        log.append(nested())
        return value

    container.add_subregion(
        addr, sys_.mmio("nester", 0x100, MemoryRegionOps(read=read, owner=owner))
    )


def test_nested_access_to_a_region_of_the_same_owner_is_access_error():
    """GUARD-2: the nested read answers ACCESS_ERROR (value 0) and its callback is skipped."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, a, lambda: memory.read(0x2000, 4), log)
    a2 = map_device(sys_, system, 0x2000, name="a2", values={0: 0x5A}, owner=a)
    assert memory.read(0x1000, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert log == [(bytes(4), MEMTX_ACCESS_ERROR)]
    assert a2.calls == []


def test_nested_write_to_the_same_owner_is_access_error():
    """GUARD-2: nested writes are refused as well, without calling the device."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, a, lambda: memory.write(0x2000, b"\x01"), log)
    a2 = map_device(sys_, system, 0x2000, name="a2", owner=a)
    memory.read(0x1000, 4)
    assert log == [MEMTX_ACCESS_ERROR]
    assert a2.calls == []


def test_nested_access_to_the_same_region_is_access_error():
    """GUARD-2: a callback that reads its own region gets ACCESS_ERROR."""
    sys_, system, memory = new_machine()
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, Owner("a"), lambda: memory.read(0x1004, 4), log)
    assert memory.read(0x1000, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert log == [(bytes(4), MEMTX_ACCESS_ERROR)]


def test_nested_access_to_another_owner_is_allowed():
    """GUARD-2: only the busy device is refused; another device answers normally."""
    sys_, system, memory = new_machine()
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, Owner("a"), lambda: memory.read(0x2000, 1), log)
    b = map_device(sys_, system, 0x2000, name="b", values={0: 0x5A}, owner=Owner("b"))
    memory.read(0x1000, 4)
    assert log == [(b"\x5a", MEMTX_OK)]
    assert b.calls == [("read", 0, 1)]


def test_cycle_through_another_device_is_caught():
    """GUARD-2: A -> B -> A is refused at the second entry into A."""
    sys_, system, memory = new_machine()
    a, b = Owner("a"), Owner("b")
    a_log: list[Any] = []
    b_log: list[Any] = []
    nesting_device(sys_, system, 0x1000, a, lambda: memory.read(0x2000, 4), a_log, 0x44332211)
    nesting_device(sys_, system, 0x2000, b, lambda: memory.read(0x1000, 4), b_log, 0x88776655)
    assert memory.read(0x1000, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert b_log == [(bytes(4), MEMTX_ACCESS_ERROR)]
    assert a_log == [(b"\x55\x66\x77\x88", MEMTX_OK)]


def test_guard_is_released_after_the_callback():
    """GUARD-3: the device is busy only for the duration of its callbacks."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    nesting_device(sys_, system, 0x1000, a, lambda: memory.read(0x2000, 1), [])
    a2 = map_device(sys_, system, 0x2000, name="a2", values={0: 0x5A}, owner=a)
    memory.read(0x1000, 4)
    assert memory.read(0x2000, 1) == (b"\x5a", MEMTX_OK)
    assert memory.read(0x1000, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert a2.calls == [("read", 0, 1)]


def test_guard_is_released_after_a_raising_callback():
    """GUARD-3: a callback that raises does not leave its device busy."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    dev = map_device(sys_, system, 0x1000, values={0: raises, 4: 0x5A}, owner=a)
    assert memory.read(0x1000, 4) == (bytes(4), MEMTX_ERROR)
    assert memory.read(0x1004, 1) == (b"\x5a", MEMTX_OK)
    assert dev.calls == [("read", 0, 4), ("read", 4, 1)]


def test_ops_without_owner_are_not_guarded():
    """GUARD-1: the guard needs an owning device; without one, nesting is allowed."""
    sys_, system, memory = new_machine()
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, None, lambda: memory.read(0x2000, 1), log)
    b = map_device(sys_, system, 0x2000, name="b", values={0: 0x5A})
    memory.read(0x1000, 4)
    assert log == [(b"\x5a", MEMTX_OK)]
    assert b.calls == [("read", 0, 1)]


def test_invalid_nested_access_reports_decode_error_before_the_guard():
    """VALID-3: access_valid runs before access_with_adjusted_size (where the guard is)."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, a, lambda: memory.read(0x2000, 1), log)
    map_device(sys_, system, 0x2000, name="a2", owner=a, valid=AccessConstraints(4, 4))
    memory.read(0x1000, 4)
    assert log == [(b"\x00", MEMTX_DECODE_ERROR)]


def test_romd_write_of_the_same_owner_is_not_guarded():
    """GUARD-1: ROM devices are excluded from the guard; their write callback runs."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, a, lambda: memory.write(0x2000, b"\x01"), log)
    flash_dev = Recorder()
    system.add_subregion(0x2000, sys_.romd("flash", 0x100, ops_for(flash_dev, owner=a)))
    memory.read(0x1000, 4)
    assert log == [MEMTX_OK]
    assert flash_dev.calls == [("write", 0, 1, 0x01)]


def test_romd_read_in_mmio_mode_of_the_same_owner_is_not_guarded():
    """GUARD-1: a ROM device in MMIO mode is still a ROM device for the guard."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, a, lambda: memory.read(0x2000, 1), log)
    flash_dev = Recorder({0: 0x5A})
    flash = sys_.romd("flash", 0x100, ops_for(flash_dev, owner=a))
    system.add_subregion(0x2000, flash)
    flash.set_romd(False)
    memory.read(0x1000, 4)
    assert log == [(b"\x5a", MEMTX_OK)]
    assert flash_dev.calls == [("read", 0, 1)]


def test_ram_and_rom_are_reachable_from_a_callback():
    """GUARD-1: RAM and ROM are never guarded (they have no callbacks to protect)."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x2000, sys_.ram("ram", 0x10, data=b"\x11" * 0x10))
    system.add_subregion(0x3000, sys_.rom("rom", 0x10, data=b"\x22" * 0x10))
    log: list[Any] = []

    def nested() -> Any:
        return (memory.read(0x2000, 1), memory.read(0x3000, 1))

    nesting_device(sys_, system, 0x1000, Owner("a"), nested, log)
    memory.read(0x1000, 4)
    assert log == [((b"\x11", MEMTX_OK), (b"\x22", MEMTX_OK))]


def test_readonly_mmio_region_is_not_guarded():
    """GUARD-1: the guard skips regions flagged readonly."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    log: list[Any] = []
    nesting_device(sys_, system, 0x1000, a, lambda: memory.read(0x2000, 1), log)
    dev = Recorder({0: 0x5A})
    region = sys_.mmio("a2", 0x100, ops_for(dev, owner=a))
    system.add_subregion(0x2000, region)
    region.set_readonly(True)
    memory.read(0x1000, 4)
    assert log == [(b"\x5a", MEMTX_OK)]
    assert dev.calls == [("read", 0, 1)]


@dataclass
class DataclassDevice:
    """An ordinary dataclass device: equality by fields, therefore unhashable."""

    name: str


def test_owner_may_be_any_device_object():
    """GUARD-1: any object identifies a device."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, values={0: 0x5A}, owner=DataclassDevice("uart0"))
    assert memory.read(0x1000, 1) == (b"\x5a", MEMTX_OK)
    assert dev.calls == [("read", 0, 1)]


# -- coroutine ops ------------------------------------------------------------------------------


class AsyncRecorder(Recorder):
    """A recorder whose callbacks are coroutine functions that yield to the loop once."""

    async def read(self, offset: int, size: int, attrs: MemTxAttrs) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)
        return Recorder.read(self, offset, size, attrs)

    async def write(self, offset: int, size: int, value: int, attrs: MemTxAttrs) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)
        return Recorder.write(self, offset, size, value, attrs)


def map_async_device(
    sys_: MemorySystem,
    container: MemoryRegion,
    addr: int,
    *,
    name: str = "adev",
    values: dict[int, Any] | None = None,
    **ops_kw: Any,
) -> AsyncRecorder:
    dev = AsyncRecorder(values)
    container.add_subregion(addr, sys_.mmio(name, 0x100, ops_for(dev, **ops_kw)))
    return dev


async def test_read_async_awaits_coroutine_read_ops():
    """Coroutine ops: read_async awaits each piece; splitting is unchanged (PIECE-1)."""
    sys_, system, memory = new_machine()
    dev = map_async_device(sys_, system, 0x1000, values={0: 0x44332211, 4: 0x88776655})
    assert await memory.read_async(0x1000, 8) == (bytes.fromhex("1122334455667788"), MEMTX_OK)
    assert dev.calls == [("read", 0, 4), ("read", 4, 4)]


async def test_write_async_awaits_coroutine_write_ops():
    """Coroutine ops: write_async awaits each piece."""
    sys_, system, memory = new_machine()
    dev = map_async_device(sys_, system, 0x1000)
    assert await memory.write_async(0x1000, bytes(range(1, 9))) == MEMTX_OK
    assert dev.calls == [("write", 0, 4, 0x04030201), ("write", 4, 4, 0x08070605)]


async def test_coroutine_read_op_may_return_a_value_and_result_tuple():
    """RESULT-3: (value, result) answers work for coroutine ops too."""
    sys_, system, memory = new_machine()
    map_async_device(sys_, system, 0x1000, values={0: (0x5A, MEMTX_ERROR)})
    assert await memory.read_async(0x1000, 1) == (b"\x5a", MEMTX_ERROR)


async def test_raising_coroutine_op_is_memtx_error_for_that_piece():
    """Our choice: a coroutine op that raises fails its piece with MEMTX_ERROR."""
    sys_, system, memory = new_machine()
    map_async_device(sys_, system, 0x1000, values={0: raises, 4: 0x88776655})
    assert await memory.read_async(0x1000, 8) == (bytes(4) + b"\x55\x66\x77\x88", MEMTX_ERROR)


async def test_read_async_mixes_sync_and_coroutine_ops():
    """One access may cross plain and coroutine ops; results are combined as usual (ACCESS-6)."""
    sys_, system, memory = new_machine()
    plain = map_device(sys_, system, 0x1000, 4, values={0: 0x44332211})
    system.add_subregion(0x1004, sys_.mmio("adev", 4, ops_for(adev := AsyncRecorder({0: 0x88}))))
    assert await memory.read_async(0x1000, 5) == (b"\x11\x22\x33\x44\x88", MEMTX_OK)
    assert plain.calls == [("read", 0, 4)]
    assert adev.calls == [("read", 0, 1)]


async def test_dispatch_read_of_ram_returns_a_read_result_not_a_coroutine():
    """addrspace contract: RAM accesses complete without awaiting anything."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10, data=b"\x5a" * 0x10))
    out = memory.dispatch_read(0x1000, 4)
    assert type(out) is ReadResult
    assert out == (b"\x5a" * 4, MEMTX_OK)


async def test_dispatch_write_of_ram_returns_a_result_not_a_coroutine():
    """addrspace contract: RAM writes complete without awaiting anything."""
    sys_, system, memory = new_machine()
    system.add_subregion(0x1000, sys_.ram("ram", 0x10))
    out = memory.dispatch_write(0x1000, b"\x5a")
    assert not inspect.isawaitable(out)
    assert out == MEMTX_OK


async def test_dispatch_read_of_coroutine_ops_returns_an_awaitable():
    """addrspace contract: dispatch_read hands back a coroutine when ops must be awaited."""
    sys_, system, memory = new_machine()
    map_async_device(sys_, system, 0x1000, values={0: 0x5A})
    out = memory.dispatch_read(0x1000, 1)
    assert inspect.isawaitable(out)
    assert await out == (b"\x5a", MEMTX_OK)


@LEAKS_COROUTINES
def test_sync_read_of_coroutine_ops_raises_async_ops_error(reap_leaked_coroutines):
    """addrspace contract: read() reaching coroutine ops raises AsyncOpsError."""
    sys_, system, memory = new_machine()
    map_async_device(sys_, system, 0x1000)
    with pytest.raises(AsyncOpsError):
        memory.read(0x1000, 4)


@LEAKS_COROUTINES
def test_sync_write_of_coroutine_ops_raises_async_ops_error(reap_leaked_coroutines):
    """addrspace contract: write() reaching coroutine ops raises AsyncOpsError."""
    sys_, system, memory = new_machine()
    map_async_device(sys_, system, 0x1000)
    with pytest.raises(AsyncOpsError):
        memory.write(0x1000, b"\x01")


def test_sync_read_refusing_coroutine_ops_leaves_no_unawaited_coroutine():
    """addrspace contract: AsyncOpsError is raised cleanly, with nothing left dangling."""
    sys_, system, memory = new_machine()
    map_async_device(sys_, system, 0x1000)
    leaked: list[str] = []

    def refused_read() -> None:
        try:
            memory.read(0x1000, 4)
        except AsyncOpsError:
            pass  # leaving the except block drops the traceback and its frames
        else:
            pytest.fail("read() did not raise AsyncOpsError")

    # A "never awaited" warning keeps its coroutine alive (as WarningMessage.source), and that
    # one may hold further coroutines: drop the messages and collect again until none appear.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused_read()
        gc.collect()
        while caught:
            leaked += [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
            caught.clear()
            gc.collect()
    assert leaked == []


async def test_guard_catches_the_same_owner_across_an_await():
    """GUARD-2: a coroutine op that awaits a nested access into its own device gets ACCESS_ERROR."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    log: list[Any] = []

    async def read(offset: int, size: int, attrs: MemTxAttrs) -> int:
        await asyncio.sleep(0)
        log.append(await memory.read_async(0x2000, 4))
        return 0x44332211

    system.add_subregion(0x1000, sys_.mmio("a1", 0x100, MemoryRegionOps(read=read, owner=a)))
    a2 = map_async_device(sys_, system, 0x2000, name="a2", owner=a)
    assert await memory.read_async(0x1000, 4) == (b"\x11\x22\x33\x44", MEMTX_OK)
    assert log == [(bytes(4), MEMTX_ACCESS_ERROR)]
    assert a2.calls == []


async def test_guard_catches_a_sync_nested_access_from_a_coroutine_op():
    """GUARD-2: the device stays busy while its coroutine runs, also for synchronous accesses."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    log: list[Any] = []

    async def read(offset: int, size: int, attrs: MemTxAttrs) -> int:
        await asyncio.sleep(0)
        log.append(memory.read(0x2000, 4))
        return 0

    system.add_subregion(0x1000, sys_.mmio("a1", 0x100, MemoryRegionOps(read=read, owner=a)))
    a2 = map_device(sys_, system, 0x2000, name="a2", owner=a)
    await memory.read_async(0x1000, 4)
    assert log == [(bytes(4), MEMTX_ACCESS_ERROR)]
    assert a2.calls == []


async def test_guard_allows_another_owner_across_an_await():
    """GUARD-2: a coroutine op may await an access into a different device."""
    sys_, system, memory = new_machine()
    log: list[Any] = []

    async def read(offset: int, size: int, attrs: MemTxAttrs) -> int:
        log.append(await memory.read_async(0x2000, 1))
        return 0

    system.add_subregion(
        0x1000, sys_.mmio("a1", 0x100, MemoryRegionOps(read=read, owner=Owner("a")))
    )
    b = map_async_device(sys_, system, 0x2000, name="b", values={0: 0x5A}, owner=Owner("b"))
    await memory.read_async(0x1000, 4)
    assert log == [(b"\x5a", MEMTX_OK)]
    assert b.calls == [("read", 0, 1)]


async def test_async_cycle_through_another_device_is_caught():
    """GUARD-2: A -> B -> A across awaits is refused at the second entry into A."""
    sys_, system, memory = new_machine()
    a, b = Owner("a"), Owner("b")
    b_log: list[Any] = []

    async def read_a(offset: int, size: int, attrs: MemTxAttrs) -> int:
        await memory.read_async(0x2000, 4)
        return 0

    async def read_b(offset: int, size: int, attrs: MemTxAttrs) -> int:
        await asyncio.sleep(0)
        b_log.append(await memory.read_async(0x1000, 4))
        return 0

    system.add_subregion(0x1000, sys_.mmio("a", 0x100, MemoryRegionOps(read=read_a, owner=a)))
    system.add_subregion(0x2000, sys_.mmio("b", 0x100, MemoryRegionOps(read=read_b, owner=b)))
    assert await memory.read_async(0x1000, 4) == (bytes(4), MEMTX_OK)
    assert b_log == [(bytes(4), MEMTX_ACCESS_ERROR)]


async def test_guard_is_released_after_a_coroutine_callback():
    """GUARD-3: once the coroutine op finished, its device can be accessed again."""
    sys_, system, memory = new_machine()
    a = Owner("a")
    dev = map_async_device(sys_, system, 0x1000, values={0: 0x11, 1: 0x22}, owner=a)
    assert await memory.read_async(0x1000, 1) == (b"\x11", MEMTX_OK)
    assert await memory.read_async(0x1001, 1) == (b"\x22", MEMTX_OK)
    assert dev.calls == [("read", 0, 1), ("read", 1, 1)]


# -- transactions (TXN-5) -----------------------------------------------------------------------


def test_access_during_an_open_transaction_uses_the_old_view():
    """TXN-5: a region mapped inside a transaction is invisible until the outermost commit."""
    sys_, system, memory = new_machine()
    with sys_.transaction():
        system.add_subregion(0x1000, sys_.ram("ram", 0x10, data=b"\x5a" * 0x10))
        assert memory.read(0x1000, 1) == (b"\x00", MEMTX_DECODE_ERROR)
    assert memory.read(0x1000, 1) == (b"\x5a", MEMTX_OK)


def test_unmapped_device_answers_until_the_transaction_commits():
    """TXN-5: an unmapped device keeps answering through the old view until commit."""
    sys_, system, memory = new_machine()
    dev = map_device(sys_, system, 0x1000, values={0: 0x5A})
    region = system.subregions[0]
    sys_.begin()
    system.del_subregion(region)
    sys_.begin()
    sys_.commit()  # an inner commit never publishes
    assert memory.read(0x1000, 1) == (b"\x5a", MEMTX_OK)
    sys_.commit()
    assert memory.read(0x1000, 1) == (b"\x00", MEMTX_DECODE_ERROR)
    assert dev.calls == [("read", 0, 1)]


async def test_async_access_during_an_open_transaction_uses_the_old_view():
    """TXN-5: coroutine accesses also see the view current when they were dispatched."""
    sys_, system, memory = new_machine()
    dev = map_async_device(sys_, system, 0x1000, values={0: 0x5A})
    with sys_.transaction():
        system.add_subregion(0x1000, sys_.ram("ram", 0x10, data=b"\xee" * 0x10), 1)
        assert await memory.read_async(0x1000, 1) == (b"\x5a", MEMTX_OK)
    assert await memory.read_async(0x1000, 1) == (b"\xee", MEMTX_OK)
    assert dev.calls == [("read", 0, 1)]
