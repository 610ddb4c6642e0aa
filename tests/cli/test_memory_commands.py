"""`mmiobus read` and `mmiobus write` against a real server (MACHINE in conftest.py), run in
this process (``main(argv)``): formats, address spaces, bus faults, where the bus is, and the
arguments they refuse.

Expected output is derived from what the test wrote, or from the Python client reading the same
server; each test uses bytes of RAM no other test touches.
"""

from __future__ import annotations

import pytest
from mmiobus.client import Bus
from support.ports import free_port
from support.spots import Spots

DMA_OFFSET = 0x80000
ROM = 0x10000000
HOLE = 0x30000000
WIDTHS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}

# 0x100 bytes of RAM per test (below UNITS_ADDR), for the `spot` fixture.
UNITS_ADDR = 508 << 10  # written `508K` by the test of units
SPOTS = Spots(0x1000, 0x100, UNITS_ADDR)


def parse_hexdump(out: str) -> list[tuple[int, bytes, str]]:
    """(address, bytes, ascii column) per line of `mmiobus read` output."""
    rows = []
    for line in out.splitlines():
        addr, rest = line.split(None, 1)
        hexes, _, ascii_col = rest.partition("|")
        rows.append((int(addr, 16), bytes.fromhex(hexes), ascii_col.rstrip("|")))
    return rows


# -- read and write --------------------------------------------------------------------------


def test_write_then_read_prints_a_hexdump_with_bus_addresses(mmiobus, any_address, spot):
    """`write ADDR HEX` then `read ADDR LEN`: 16 bytes a line, each line starting with its
    bus address, with an ASCII column (over TCP and a unix socket)."""
    data = b"Hello, bus! \x00\x01\x02\x7f mmio"
    assert mmiobus("write", "--server", any_address, hex(spot), data.hex()).text() == ""
    out = mmiobus("read", "--server", any_address, hex(spot), str(len(data))).text()
    rows = parse_hexdump(out)
    assert [r[0] for r in rows] == [spot, spot + 16]
    assert b"".join(r[1] for r in rows) == data
    printable = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    assert "".join(r[2] for r in rows) == printable


def test_read_addresses_are_decimal_or_hex(mmiobus, srv, spot):
    """ADDR may be written in decimal or 0x hex; both name the same byte."""
    mmiobus("write", "-s", srv, hex(spot), "5a").text()
    assert parse_hexdump(mmiobus("read", "-s", srv, str(spot), "1").text())[0][:2] == (spot, b"Z")


def test_write_accepts_spaced_and_colon_separated_hex(mmiobus, srv, spot, bus):
    """DATA as 'de ad be ef' or de:ad:be:ef is the same bytes as deadbeef."""
    mmiobus("write", "-s", srv, hex(spot), "de ad be ef").text()
    mmiobus("write", "-s", srv, hex(spot + 4), "ca:fe").text()
    assert bus.read(spot, 6) == bytes.fromhex("deadbeefcafe")


def test_read_format_raw_prints_the_bytes(mmiobus, srv, spot, bus):
    """`read --format raw` writes exactly the bytes to stdout."""
    data = bytes(range(256))[::7]
    bus.write(spot, data)
    out = mmiobus("read", "-s", srv, "--format", "raw", hex(spot), str(len(data)))
    assert out.returncode == 0, out.stderr
    assert out.stdout == data


@pytest.mark.parametrize("fmt", sorted(WIDTHS))
def test_read_format_uN_prints_values_in_the_machines_byte_order(mmiobus, srv, spot, bus, fmt):
    """`read --format uN ADDR 16` prints one value per N bytes, little-endian here."""
    n = WIDTHS[fmt]
    data = bytes(range(0x10, 0x20))
    bus.write(spot, data)
    out = mmiobus("read", "-s", srv, "--format", fmt, hex(spot), "16").text()
    values = [int(line, 16) for line in out.split()]
    assert values == [int.from_bytes(data[i : i + n], "little") for i in range(0, 16, n)]


def test_read_format_uN_without_length_reads_one_value(mmiobus, srv, spot, bus):
    """`read --format u32 ADDR` reads one 32-bit value."""
    bus.write(spot, b"\x78\x56\x34\x12\xff")
    out = mmiobus("read", "-s", srv, "-f", "u32", hex(spot)).text()
    assert [int(v, 16) for v in out.split()] == [int.from_bytes(b"\x78\x56\x34\x12", "little")]


@pytest.mark.parametrize("fmt", sorted(WIDTHS))
def test_write_format_uN_stores_the_value_in_the_machines_byte_order(mmiobus, srv, spot, bus, fmt):
    """`write --format uN ADDR VALUE` stores N bytes, little-endian here."""
    n = WIDTHS[fmt]
    value = int.from_bytes(bytes(range(0xC1, 0xC1 + n)), "big")
    mmiobus("write", "-s", srv, "--format", fmt, hex(spot), hex(value)).text()
    assert bus.read(spot, n + 1) == value.to_bytes(n, "little") + b"\x00"


def test_read_format_uN_on_a_big_endian_machine_is_big_endian(mmiobus, big_server, spot):
    """`read --format u16` on an `endianness: big` machine reads the high byte first."""
    data = bytes(range(0x20, 0x28))
    with Bus(big_server.tcp) as b:
        b.write(spot, data)
    out = mmiobus("read", "-s", big_server.tcp, "--format", "u16", hex(spot), "8").text()
    values = [int(line, 16) for line in out.split()]
    assert values == [int.from_bytes(data[i : i + 2], "big") for i in range(0, 8, 2)]


def test_write_format_uN_on_a_big_endian_machine_is_big_endian(mmiobus, big_server, spot):
    """`write --format u64` on an `endianness: big` machine stores the high byte first."""
    value = int.from_bytes(bytes(range(0xD1, 0xD9)), "big")
    mmiobus("write", "-s", big_server.tcp, "--format", "u64", hex(spot), hex(value)).text()
    with Bus(big_server.tcp) as b:
        assert b.read(spot, 8) == value.to_bytes(8, "big")


def test_write_format_raw_writes_the_text(mmiobus, srv, spot, bus):
    """`write --format raw ADDR TEXT` stores the text's bytes."""
    mmiobus("write", "-s", srv, "--format", "raw", hex(spot), "plain text").text()
    assert bus.read(spot, 10) == b"plain text"


def test_write_format_raw_reads_a_file(mmiobus, srv, spot, bus, tmp_path):
    """`write --format raw ADDR @FILE` stores the file's bytes."""
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(40)))
    mmiobus("write", "-s", srv, "--format", "raw", hex(spot), f"@{blob}").text()
    assert bus.read(spot, 40) == bytes(range(40))


def test_write_format_raw_reads_standard_input(mmiobus, srv, spot, bus):
    """`write --format raw ADDR -` stores what comes on standard input."""
    mmiobus("write", "-s", srv, "--format", "raw", hex(spot), "-", stdin=b"\x00from stdin").text()
    assert bus.read(spot, 11) == b"\x00from stdin"


def test_address_space_option_selects_the_space(mmiobus, srv, spot, bus):
    """`--address-space dma`: reads and writes go to the `dma` space (RAM from DMA_OFFSET)."""
    bus.write(DMA_OFFSET + spot, b"through dma")
    out = mmiobus("read", "-s", srv, "--address-space", "dma", hex(spot), "11").text()
    assert parse_hexdump(out)[0][:2] == (spot, b"through dma")
    mmiobus("write", "-s", srv, "-a", "dma", hex(spot + 0x20), "0102").text()
    assert bus.read(DMA_OFFSET + spot + 0x20, 2) == b"\x01\x02"


def test_unknown_address_space_is_one_error_line(mmiobus, srv):
    """`--address-space` naming no space: exit 1, one line naming it."""
    out = mmiobus("read", "-s", srv, "-a", "nowhere", "0", "4")
    assert out.returncode == 1
    assert "nowhere" in out.one_error_line()


# -- bus faults ------------------------------------------------------------------------------


def test_read_bus_fault_exits_3_with_one_line_naming_the_result(mmiobus, srv):
    """A read of a hole: exit 3 and one stderr line naming DECODE_ERROR and the address."""
    out = mmiobus("read", "-s", srv, hex(HOLE), "4")
    assert out.returncode == 3
    line = out.one_error_line()
    assert "DECODE_ERROR" in line
    assert hex(HOLE) in line


def test_write_bus_fault_exits_3_with_one_line_naming_the_result(mmiobus, srv, bus):
    """A write to ROM: exit 3 and one stderr line naming DECODE_ERROR; the ROM is unchanged."""
    before = bus.read(ROM, 2)
    out = mmiobus("write", "-s", srv, hex(ROM), "ffff")
    assert out.returncode == 3
    line = out.one_error_line()
    assert "DECODE_ERROR" in line
    assert hex(ROM) in line
    assert bus.read(ROM, 2) == before


@pytest.mark.parametrize("fmt", ["hex", "raw", "u32"])
def test_read_bus_fault_prints_no_bytes_on_standard_output(mmiobus, srv, fmt):
    """A faulting read has no data to show: standard output stays empty (no made-up zeros) in
    every format; the fault is one line on standard error, exit 3."""
    out = mmiobus("read", "-s", srv, "--format", fmt, hex(HOLE), "4")
    assert out.returncode == 3
    assert out.stdout == b""
    assert "DECODE_ERROR" in out.one_error_line()


# -- connecting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["read", "0"], ["write", "0", "00"], ["mtree"], ["info"], ["apply", "-"]],
    ids=["read", "write", "mtree", "info", "apply"],
)
def test_no_server_is_one_error_line_and_exit_1(mmiobus, args):
    """Nothing listening: one error line (no traceback) saying what to do, exit 1."""
    target = f"127.0.0.1:{free_port()}"
    stdin = b"- set_enabled: {id: ram, enabled: false}\n" if args[0] == "apply" else None
    out = mmiobus(*args, "--server", target, stdin=stdin)
    assert out.returncode == 1
    line = out.one_error_line()
    assert target in line
    assert "mmiobus serve" in line


def test_mmiobus_server_environment_variable_is_honoured(mmiobus, cli_server, spot, bus):
    """With no --server, $MMIOBUS_SERVER says where the bus is."""
    env = {"MMIOBUS_SERVER": cli_server.unix}
    mmiobus("write", hex(spot), "0e0f", env=env).text()
    assert bus.read(spot, 2) == b"\x0e\x0f"
    out = mmiobus("read", hex(spot), "2", env=env).text()
    assert parse_hexdump(out)[0][1] == b"\x0e\x0f"


def test_server_option_wins_over_the_environment_variable(mmiobus, srv, spot, bus):
    """--server overrides $MMIOBUS_SERVER."""
    bus.write(spot, b"opt")
    env = {"MMIOBUS_SERVER": f"127.0.0.1:{free_port()}"}
    out = mmiobus("read", "--server", srv, hex(spot), "3", env=env).text()
    assert parse_hexdump(out)[0][1] == b"opt"


# -- bad arguments ---------------------------------------------------------------------------


def test_non_numeric_address_is_a_usage_error_naming_it(mmiobus, srv):
    """ADDR that is not a number: exit 2, one error line naming it, no traceback."""
    out = mmiobus("read", "-s", srv, "0xzz", "4")
    assert out.returncode == 2
    errors = out.error_lines()
    assert len(errors) == 1, out.stderr
    assert "0xzz" in errors[0]


def test_odd_hex_data_is_one_error_line(mmiobus, srv, spot, bus):
    """DATA with an odd number of hex digits: exit 1, one line naming it; nothing written."""
    out = mmiobus("write", "-s", srv, hex(spot), "abc")
    assert out.returncode == 1
    assert "abc" in out.one_error_line()
    assert bus.read(spot, 2) == b"\x00\x00"


def test_value_too_large_for_the_format_is_one_error_line(mmiobus, srv, spot):
    """`write --format u8 ADDR 256`: exit 1, one line naming the value."""
    out = mmiobus("write", "-s", srv, "--format", "u8", hex(spot), "256")
    assert out.returncode == 1
    assert "256" in out.one_error_line()


def test_length_not_a_multiple_of_the_width_is_one_error_line(mmiobus, srv, spot):
    """`read --format u32 ADDR 6`: exit 1, one line naming the format."""
    out = mmiobus("read", "-s", srv, "--format", "u32", hex(spot), "6")
    assert out.returncode == 1
    assert "u32" in out.one_error_line()


def test_read_longer_than_one_access_is_cut_within_the_servers_limits(mmiobus, srv, bus):
    """LEN over --max-access-bytes is no error: the read is cut into accesses the server takes
    (here the whole 1 MiB of RAM and the first byte past it, which faults: exit 3, one line
    naming the access that faulted, nothing on standard output)."""
    limit = bus.info.limits.max_access_bytes
    data = bus.read(0, limit)
    out = mmiobus("read", "-s", srv, "-f", "raw", "0", str(limit))
    assert out.returncode == 0, out.stderr
    assert out.stdout == data
    past = mmiobus("read", "-s", srv, "-f", "raw", "0", str(limit + 1))
    assert past.returncode == 3 and past.stdout == b""
    assert f"part of {limit + 1} bytes at 0x0" in past.one_error_line()


@pytest.mark.parametrize("addr", ["0x10000000000000000", "-1"], ids=["2**64", "negative"])
def test_address_outside_64_bits_is_one_error_line(mmiobus, srv, addr):
    """ADDR outside 0..2**64-1: a non-zero exit and one error line, no traceback."""
    out = mmiobus("read", "-s", srv, "--", addr, "4")
    assert out.returncode in (1, 2)
    errors = out.error_lines()
    assert len(errors) == 1, out.stderr


def test_negative_length_is_one_error_line(mmiobus, srv):
    """`read ADDR -5`: a non-zero exit and one error line, no traceback."""
    out = mmiobus("read", "-s", srv, "0", "-5")
    assert out.returncode in (1, 2)
    errors = out.error_lines()
    assert len(errors) == 1, out.stderr


@pytest.mark.parametrize(
    "data, width, pairs",
    [("0x12345678", "u32", "12 34 56 78"), ("0x1234", "u16", "12 34"), ("0xabc", "u16", "0a bc")],
)
def test_write_of_a_0x_number_without_format_is_refused_with_both_readings(
    mmiobus, srv, spot, bus, data, width, pairs
):
    """`write ADDR 0x12345678` is ambiguous (a value, whose bytes depend on the byte order, or
    the bytes 12 34 56 78?): exit 1, one line naming DATA and how to write either reading;
    nothing is written."""
    out = mmiobus("write", "-s", srv, hex(spot), data)
    assert out.returncode == 1
    line = out.one_error_line()
    assert data in line and f"-f {width}" in line and f"'{pairs}'" in line
    assert bus.read(spot, 4) == bytes(4)


def test_both_readings_of_a_0x_number_write_what_they_say(mmiobus, srv, spot, bus):
    """Following the hint: `-f u32 ADDR 0x12345678` stores the value in the machine's byte
    order (little-endian here); `ADDR '12 34 56 78'` stores the bytes in that order."""
    mmiobus("write", "-s", srv, "-f", "u32", hex(spot), "0x12345678").text()
    mmiobus("write", "-s", srv, hex(spot + 4), "12 34 56 78").text()
    assert bus.read(spot, 8) == bytes.fromhex("78563412") + bytes.fromhex("12345678")


def test_numbers_take_units_as_descriptions_do(mmiobus, srv, bus):
    """ADDR and LEN are written as in machine descriptions: `508K` is 508 * 1024, `0x1_0` is
    16, `1K` is 1024."""
    bus.write(UNITS_ADDR, b"units")
    out = mmiobus("read", "-s", srv, "508K", "0x1_0").text()
    assert parse_hexdump(out)[0][:2] == (UNITS_ADDR, b"units" + bytes(11))
    assert len(mmiobus("read", "-s", srv, "-f", "raw", "0", "1K").stdout) == 1024
