"""The `mmiobus` command line against a real server, run as a user runs it (a subprocess).

Expected output is derived from what the test wrote, or from the Python client reading the same
server; each test uses bytes of RAM no other test touches.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from mmiobus.client import Bus
from mmiobus.v1 import bus_pb2 as pb
from support.servers import MMIOBUS, ServerProcess, start_server

MACHINE = """\
endianness: little
address_spaces:
  - {name: memory, root: system}
  - {name: dma, root: dma-root}
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 1 MiB}
      - {name: rom, kind: rom, addr: 0x10000000, size: 0x1000}
      - {name: spare, kind: ram, addr: 0x50000000, size: 0x1000, enabled: false}
  - name: dma-root
    kind: container
    size: 2**32
    subregions:
      - {name: dma-window, kind: alias, target: ram, offset: 0x80000, size: 0x80000}
"""
DMA_OFFSET = 0x80000
ROM = 0x10000000
HOLE = 0x30000000
WIDTHS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}


def mmiobus(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed `mmiobus` script; stdout stays bytes (raw reads), stderr is text."""
    environ = {k: v for k, v in os.environ.items() if k != "MMIOBUS_SERVER"}
    out = subprocess.run(
        [MMIOBUS, *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**environ, **(env or {})},
    )
    out.stderr = out.stderr.decode()  # type: ignore[assignment]
    return out


def text(out: subprocess.CompletedProcess[bytes]) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout.decode()


def one_error_line(out: subprocess.CompletedProcess[bytes]) -> str:
    """The single line of stderr (asserting there is exactly one, and no traceback)."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def machine_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "machine.yaml"
    path.write_text(MACHINE)
    return path


@pytest.fixture(scope="module")
def cli_server(machine_file):
    srv = start_server(config=machine_file)
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture(scope="module")
def srv(cli_server: ServerProcess) -> str:
    """The server's TCP address."""
    return cli_server.tcp


@pytest.fixture(params=["tcp", "unix"])
def any_address(request, cli_server: ServerProcess) -> str:
    return cli_server.tcp if request.param == "tcp" else cli_server.unix


@pytest.fixture(scope="module")
def bus(cli_server):
    with Bus(cli_server.tcp) as b:
        yield b


_spots = itertools.count()
_names = itertools.count()


@pytest.fixture
def spot() -> int:
    """0x100 bytes of RAM (below DMA_OFFSET) no other test uses."""
    n = next(_spots)
    assert n < DMA_OFFSET // 0x100
    return 0x1000 + n * 0x100


def uid(prefix: str = "cli") -> str:
    return f"{prefix}{next(_names)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_hexdump(out: str) -> list[tuple[int, bytes, str]]:
    """(address, bytes, ascii column) per line of `mmiobus read` output."""
    rows = []
    for line in out.splitlines():
        addr, rest = line.split(None, 1)
        hexes, _, ascii_col = rest.partition("|")
        rows.append((int(addr, 16), bytes.fromhex(hexes), ascii_col.rstrip("|")))
    return rows


# -- read and write --------------------------------------------------------------------------


def test_write_then_read_prints_a_hexdump_with_bus_addresses(any_address, spot):
    """`write ADDR HEX` then `read ADDR LEN`: 16 bytes a line, each line starting with its
    bus address, with an ASCII column (over TCP and a unix socket)."""
    data = b"Hello, bus! \x00\x01\x02\x7f mmio"
    assert text(mmiobus("write", "--server", any_address, hex(spot), data.hex())) == ""
    out = text(mmiobus("read", "--server", any_address, hex(spot), str(len(data))))
    rows = parse_hexdump(out)
    assert [r[0] for r in rows] == [spot, spot + 16]
    assert b"".join(r[1] for r in rows) == data
    printable = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    assert "".join(r[2] for r in rows) == printable


def test_read_addresses_are_decimal_or_hex(srv, spot):
    """ADDR may be written in decimal or 0x hex; both name the same byte."""
    text(mmiobus("write", "-s", srv, hex(spot), "5a"))
    assert parse_hexdump(text(mmiobus("read", "-s", srv, str(spot), "1")))[0][:2] == (spot, b"Z")


def test_write_accepts_spaced_and_colon_separated_hex(srv, spot, bus):
    """DATA as 'de ad be ef' or de:ad:be:ef is the same bytes as deadbeef."""
    text(mmiobus("write", "-s", srv, hex(spot), "de ad be ef"))
    text(mmiobus("write", "-s", srv, hex(spot + 4), "ca:fe"))
    assert bus.read(spot, 6) == bytes.fromhex("deadbeefcafe")


def test_read_format_raw_prints_the_bytes(srv, spot, bus):
    """`read --format raw` writes exactly the bytes to stdout."""
    data = bytes(range(256))[::7]
    bus.write(spot, data)
    out = mmiobus("read", "-s", srv, "--format", "raw", hex(spot), str(len(data)))
    assert out.returncode == 0, out.stderr
    assert out.stdout == data


@pytest.mark.parametrize("fmt", sorted(WIDTHS))
def test_read_format_uN_prints_values_in_the_machines_byte_order(srv, spot, bus, fmt):
    """`read --format uN ADDR 16` prints one value per N bytes, little-endian here."""
    n = WIDTHS[fmt]
    data = bytes(range(0x10, 0x20))
    bus.write(spot, data)
    out = text(mmiobus("read", "-s", srv, "--format", fmt, hex(spot), "16"))
    values = [int(line, 16) for line in out.split()]
    assert values == [int.from_bytes(data[i : i + n], "little") for i in range(0, 16, n)]


def test_read_format_uN_without_length_reads_one_value(srv, spot, bus):
    """`read --format u32 ADDR` reads one 32-bit value."""
    bus.write(spot, b"\x78\x56\x34\x12\xff")
    out = text(mmiobus("read", "-s", srv, "-f", "u32", hex(spot)))
    assert [int(v, 16) for v in out.split()] == [int.from_bytes(b"\x78\x56\x34\x12", "little")]


@pytest.mark.parametrize("fmt", sorted(WIDTHS))
def test_write_format_uN_stores_the_value_in_the_machines_byte_order(srv, spot, bus, fmt):
    """`write --format uN ADDR VALUE` stores N bytes, little-endian here."""
    n = WIDTHS[fmt]
    value = int.from_bytes(bytes(range(0xC1, 0xC1 + n)), "big")
    text(mmiobus("write", "-s", srv, "--format", fmt, hex(spot), hex(value)))
    assert bus.read(spot, n + 1) == value.to_bytes(n, "little") + b"\x00"


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    """The same machine, big-endian."""
    path = tmp_path_factory.mktemp("cli-big") / "machine.yaml"
    path.write_text(MACHINE.replace("endianness: little", "endianness: big"))
    srv = start_server(config=path)
    yield srv
    assert srv.stop() == 0, srv.log()


def test_read_format_uN_on_a_big_endian_machine_is_big_endian(big_server, spot):
    """`read --format u16` on an `endianness: big` machine reads the high byte first."""
    data = bytes(range(0x20, 0x28))
    with Bus(big_server.tcp) as b:
        b.write(spot, data)
    out = text(mmiobus("read", "-s", big_server.tcp, "--format", "u16", hex(spot), "8"))
    values = [int(line, 16) for line in out.split()]
    assert values == [int.from_bytes(data[i : i + 2], "big") for i in range(0, 8, 2)]


def test_write_format_uN_on_a_big_endian_machine_is_big_endian(big_server, spot):
    """`write --format u64` on an `endianness: big` machine stores the high byte first."""
    value = int.from_bytes(bytes(range(0xD1, 0xD9)), "big")
    text(mmiobus("write", "-s", big_server.tcp, "--format", "u64", hex(spot), hex(value)))
    with Bus(big_server.tcp) as b:
        assert b.read(spot, 8) == value.to_bytes(8, "big")


def test_write_format_raw_writes_the_text(srv, spot, bus):
    """`write --format raw ADDR TEXT` stores the text's bytes."""
    text(mmiobus("write", "-s", srv, "--format", "raw", hex(spot), "plain text"))
    assert bus.read(spot, 10) == b"plain text"


def test_write_format_raw_reads_a_file(srv, spot, bus, tmp_path):
    """`write --format raw ADDR @FILE` stores the file's bytes."""
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(40)))
    text(mmiobus("write", "-s", srv, "--format", "raw", hex(spot), f"@{blob}"))
    assert bus.read(spot, 40) == bytes(range(40))


def test_write_format_raw_reads_standard_input(srv, spot, bus):
    """`write --format raw ADDR -` stores what comes on standard input."""
    text(mmiobus("write", "-s", srv, "--format", "raw", hex(spot), "-", stdin=b"\x00from stdin"))
    assert bus.read(spot, 11) == b"\x00from stdin"


def test_address_space_option_selects_the_space(srv, spot, bus):
    """`--address-space dma`: reads and writes go to the `dma` space (RAM from DMA_OFFSET)."""
    bus.write(DMA_OFFSET + spot, b"through dma")
    out = text(mmiobus("read", "-s", srv, "--address-space", "dma", hex(spot), "11"))
    assert parse_hexdump(out)[0][:2] == (spot, b"through dma")
    text(mmiobus("write", "-s", srv, "-a", "dma", hex(spot + 0x20), "0102"))
    assert bus.read(DMA_OFFSET + spot + 0x20, 2) == b"\x01\x02"


def test_unknown_address_space_is_one_error_line(srv):
    """`--address-space` naming no space: exit 1, one line naming it."""
    out = mmiobus("read", "-s", srv, "-a", "nowhere", "0", "4")
    assert out.returncode == 1
    assert "nowhere" in one_error_line(out)


# -- bus faults ------------------------------------------------------------------------------


def test_read_bus_fault_exits_3_with_one_line_naming_the_result(srv):
    """A read of a hole: exit 3 and one stderr line naming DECODE_ERROR and the address."""
    out = mmiobus("read", "-s", srv, hex(HOLE), "4")
    assert out.returncode == 3
    line = one_error_line(out)
    assert "DECODE_ERROR" in line
    assert hex(HOLE) in line


def test_write_bus_fault_exits_3_with_one_line_naming_the_result(srv, bus):
    """A write to ROM: exit 3 and one stderr line naming DECODE_ERROR; the ROM is unchanged."""
    before = bus.read(ROM, 2)
    out = mmiobus("write", "-s", srv, hex(ROM), "ffff")
    assert out.returncode == 3
    line = one_error_line(out)
    assert "DECODE_ERROR" in line
    assert hex(ROM) in line
    assert bus.read(ROM, 2) == before


# -- mtree, info -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags", [[], ["-f"], ["-D"], ["-f", "-D"]], ids=["tree", "flat", "disabled", "flat-disabled"]
)
def test_mtree_server_prints_the_servers_mtree(srv, bus, flags):
    """`mtree --server ADDR [-f] [-D]` prints exactly what the server's Mtree returns."""
    out = text(mmiobus("mtree", "--server", srv, *flags))
    assert out == bus.mtree(flat="-f" in flags, disabled="-D" in flags)


def test_mtree_server_shows_disabled_regions_only_with_D(srv):
    """The machine's disabled region appears with -D only."""
    assert "spare" not in text(mmiobus("mtree", "--server", srv))
    assert "spare [disabled]" in text(mmiobus("mtree", "--server", srv, "-D"))


def test_info_prints_the_servers_info_as_json(srv, bus):
    """`info` prints JSON with the server's version, byte order, address spaces and limits."""
    info = json.loads(text(mmiobus("info", "-s", srv)))
    assert info["version"] == bus.info.version
    assert info["protocolVersion"] == bus.info.protocol_version
    assert info["endianness"] == pb.Endianness.Name(bus.info.endianness)
    assert [s["id"] for s in info["addressSpaces"]] == [s.id for s in bus.info.address_spaces]
    assert info["limits"]["maxTopologyOps"] == bus.info.limits.max_topology_ops
    assert info["limits"]["maxAccessBytes"] == bus.info.limits.max_access_bytes


# -- apply -----------------------------------------------------------------------------------


def test_apply_applies_yaml_ops_with_file_contents_and_prints_a_summary(srv, bus, tmp_path):
    """`apply FILE`: ops from YAML (contents from `file:` next to it), then one summary line
    with the number of ops and the new topology generation."""
    r = uid()
    (tmp_path / "image.bin").write_bytes(b"loaded from file")
    ops = tmp_path / "ops.yaml"
    ops.write_text(
        f"- create_region: {{id: {r}, kind: rom, size: 0x100, file: image.bin}}\n"
        f"- add_subregion: {{parent: system, child: {r}, addr: 0x60000000, priority: 1}}\n"
    )
    out = text(mmiobus("apply", "-s", srv, str(ops)))
    assert bus.read(0x60000000, 16) == b"loaded from file"
    [line] = out.splitlines()
    generation = bus.topology(flat_views=False).generation
    assert "applied 2 operations" in line
    assert str(generation) in line


def test_apply_reads_standard_input(srv, bus):
    """`apply -` reads the ops from standard input."""
    r = uid()
    yaml_ops = (
        f"- create_region: {{id: {r}, kind: ram, size: 4K}}\n"
        f"- add_subregion: {{parent: system, child: {r}, addr: 0x61000000}}\n"
        f"- set_enabled: {{id: {r}, enabled: false}}\n"
    )
    out = text(mmiobus("apply", "-s", srv, "-", stdin=yaml_ops.encode()))
    assert "applied 3 operations" in out
    region = next(x for x in bus.topology(flat_views=False).regions if x.id == r)
    assert (region.container, region.addr, region.enabled) == ("system", 0x61000000, False)


def test_failing_apply_is_one_error_line_naming_the_op_and_changes_nothing(srv, bus, tmp_path):
    """An op referring to a missing region: exit 1, one line naming the op, nothing applied."""
    made, missing = uid("made"), uid("missing")
    ops = tmp_path / "bad.yaml"
    ops.write_text(
        f"- create_region: {{id: {made}, kind: ram, size: 0x100}}\n"
        f"- add_subregion: {{parent: system, child: {made}, addr: 0x62000000}}\n"
        f"- set_address: {{id: {missing}, addr: 0x1000}}\n"
    )
    before = (bus.topology(), bus.mtree(), bus.mtree(flat=True))
    out = mmiobus("apply", "-s", srv, str(ops))
    assert out.returncode == 1
    line = one_error_line(out)
    assert "ops[2]" in line
    assert missing in line
    assert (bus.topology(), bus.mtree(), bus.mtree(flat=True)) == before
    assert bus.read(0x62000000, 4, check=False).result != 0


def test_apply_with_an_unknown_operation_is_one_error_line(srv, bus, tmp_path):
    """A YAML entry that is no operation: exit 1, one line naming the entry and the name."""
    r = uid()
    ops = tmp_path / "typo.yaml"
    ops.write_text(
        f"- create_region: {{id: {r}, kind: ram, size: 0x100}}\n"
        f"- add_subregoin: {{parent: system, child: {r}, addr: 0x63000000}}\n"
    )
    before = bus.topology()
    out = mmiobus("apply", "-s", srv, str(ops))
    assert out.returncode == 1
    line = one_error_line(out)
    assert "ops[1]" in line
    assert "add_subregoin" in line
    assert bus.topology() == before


def test_apply_with_a_bad_field_value_is_one_error_line(srv, tmp_path):
    """A size that is not a size: exit 1, one line naming the op and the value."""
    ops = tmp_path / "size.yaml"
    ops.write_text(f"- create_region: {{id: {uid()}, kind: ram, size: lots}}\n")
    out = mmiobus("apply", "-s", srv, str(ops))
    assert out.returncode == 1
    line = one_error_line(out)
    assert "ops[0]" in line
    assert "lots" in line


def test_apply_missing_file_is_one_error_line(srv, tmp_path):
    """`apply` of a file that does not exist: exit 1, one line naming it."""
    path = tmp_path / "absent.yaml"
    out = mmiobus("apply", "-s", srv, str(path))
    assert out.returncode == 1
    assert str(path) in one_error_line(out)


# -- connecting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["read", "0"], ["write", "0", "00"], ["mtree"], ["info"], ["apply", "-"]],
    ids=["read", "write", "mtree", "info", "apply"],
)
def test_no_server_is_one_error_line_and_exit_1(args):
    """Nothing listening: one error line (no traceback) saying what to do, exit 1."""
    target = f"127.0.0.1:{free_port()}"
    stdin = b"- set_enabled: {id: ram, enabled: false}\n" if args[0] == "apply" else None
    out = mmiobus(*args, "--server", target, stdin=stdin)
    assert out.returncode == 1
    line = one_error_line(out)
    assert target in line
    assert "mmiobus serve" in line


def test_mmiobus_server_environment_variable_is_honoured(cli_server, spot, bus):
    """With no --server, $MMIOBUS_SERVER says where the bus is."""
    env = {"MMIOBUS_SERVER": cli_server.unix}
    text(mmiobus("write", hex(spot), "0e0f", env=env))
    assert bus.read(spot, 2) == b"\x0e\x0f"
    out = text(mmiobus("read", hex(spot), "2", env=env))
    assert parse_hexdump(out)[0][1] == b"\x0e\x0f"


def test_server_option_wins_over_the_environment_variable(srv, spot, bus):
    """--server overrides $MMIOBUS_SERVER."""
    bus.write(spot, b"opt")
    env = {"MMIOBUS_SERVER": f"127.0.0.1:{free_port()}"}
    out = text(mmiobus("read", "--server", srv, hex(spot), "3", env=env))
    assert parse_hexdump(out)[0][1] == b"opt"


# -- bad arguments ---------------------------------------------------------------------------


def test_non_numeric_address_is_a_usage_error_naming_it(srv):
    """ADDR that is not a number: exit 2, one error line naming it, no traceback."""
    out = mmiobus("read", "-s", srv, "0xzz", "4")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, out.stderr
    assert "0xzz" in errors[0]


def test_odd_hex_data_is_one_error_line(srv, spot, bus):
    """DATA with an odd number of hex digits: exit 1, one line naming it; nothing written."""
    out = mmiobus("write", "-s", srv, hex(spot), "abc")
    assert out.returncode == 1
    assert "abc" in one_error_line(out)
    assert bus.read(spot, 2) == b"\x00\x00"


def test_value_too_large_for_the_format_is_one_error_line(srv, spot):
    """`write --format u8 ADDR 256`: exit 1, one line naming the value."""
    out = mmiobus("write", "-s", srv, "--format", "u8", hex(spot), "256")
    assert out.returncode == 1
    assert "256" in one_error_line(out)


def test_length_not_a_multiple_of_the_width_is_one_error_line(srv, spot):
    """`read --format u32 ADDR 6`: exit 1, one line naming the format."""
    out = mmiobus("read", "-s", srv, "--format", "u32", hex(spot), "6")
    assert out.returncode == 1
    assert "u32" in one_error_line(out)


def test_read_longer_than_the_server_allows_is_one_error_line(srv, bus):
    """LEN over --max-access-bytes: exit 1, one line naming the limit's option."""
    too_long = bus.info.limits.max_access_bytes + 1
    out = mmiobus("read", "-s", srv, "0", str(too_long))
    assert out.returncode == 1
    assert "--max-access-bytes" in one_error_line(out)


@pytest.mark.parametrize("addr", ["0x10000000000000000", "-1"], ids=["2**64", "negative"])
def test_address_outside_64_bits_is_one_error_line(srv, addr):
    """ADDR outside 0..2**64-1: a non-zero exit and one error line, no traceback."""
    out = mmiobus("read", "-s", srv, "--", addr, "4")
    assert out.returncode in (1, 2)
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert "Traceback" not in out.stderr
    assert len(errors) == 1, out.stderr


def test_negative_length_is_one_error_line(srv):
    """`read ADDR -5`: a non-zero exit and one error line, no traceback."""
    out = mmiobus("read", "-s", srv, "0", "-5")
    assert out.returncode in (1, 2)
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert "Traceback" not in out.stderr
    assert len(errors) == 1, out.stderr
