"""Transfers of any size from the command line, run in this process (``main(argv)``) against
real servers on the built-in machine (128 MiB of RAM at 0): `load`, `dump`, `fill`, and
`read`/`write` beyond one access, cut within the server's limits; a progress bar at a terminal
only; faults and empty input said in one line.

Multi-megabyte images are checked byte for byte, by a dump and a checksum.
"""

from __future__ import annotations

import hashlib
import random
import sys

import pytest
from mmiobus.client import Bus
from support.servers import ServerFactory, ServerProcess

MiB = 1 << 20
RAM_END = 128 * MiB
ROM = 0xFFFC0000


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(None)


@pytest.fixture(scope="module")
def tight(machine_server: ServerFactory) -> ServerProcess:
    """The built-in machine behind small limits: 4 KiB per access, 16 KiB and 3 accesses per
    batch, 64 KiB per message."""
    return machine_server(
        None, "--max-access-bytes", "4K", "--max-batch-bytes", "16K", "--max-batch-accesses",
        "3", "--max-message-bytes", "64K",
    )  # fmt: skip


@pytest.fixture(scope="module")
def bus(server: ServerProcess):
    with Bus(server.tcp) as b:
        yield b


def image(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_load_then_dump_a_3_mb_image_checks_out(mmiobus, server, bus, tmp_path):
    """`load FILE ADDR` writes a 3 MB image (three times --max-access-bytes); `dump ADDR LEN
    FILE` reads it back: same checksum, and the bus holds the same bytes."""
    data = image(3_000_000, 1)
    src, back = tmp_path / "firmware.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    out = mmiobus("load", str(src), "0x100000", "-s", server.tcp).text()
    assert out == f"loaded {len(data)} bytes from {src} at 0x100000\n"
    out = mmiobus("dump", "0x100000", str(len(data)), str(back), "-s", server.tcp).text()
    assert out == f"dumped {len(data)} bytes at 0x100000 to {back}\n"
    assert sha(back.read_bytes()) == sha(data)
    assert sha(bus.read(0x100000, MiB) + bus.read(0x200000, MiB) + bus.read(0x300000, 3_000_000 - 2 * MiB)) == sha(data)  # fmt: skip


def test_read_and_write_beyond_one_access(mmiobus, server, bus, tmp_path):
    """`write -f raw ADDR @FILE` of 2.5 MiB and `read -f raw ADDR LEN` of it work: each is cut
    into accesses within the limits."""
    data = image(5 * MiB // 2, 2)
    (tmp_path / "blob").write_bytes(data)
    assert mmiobus("write", "-f", "raw", "0x600000", f"@{tmp_path / 'blob'}",
                   "-s", server.tcp).text() == ""  # fmt: skip
    out = mmiobus("read", "-f", "raw", "0x600000", str(len(data)), "-s", server.tcp)
    assert out.returncode == 0, out.stderr
    assert sha(out.stdout) == sha(data)


def test_dump_to_standard_output(mmiobus, server, bus):
    data = image(MiB + 5, 3)
    mmiobus("load", "-", "0xa00000", "-s", server.tcp, stdin=data).text()
    out = mmiobus("dump", "0xa00000", str(len(data)), "-", "-s", server.tcp)
    assert out.returncode == 0, out.stderr
    assert out.stdout == data


def test_fill_repeats_a_pattern_across_accesses(mmiobus, server, bus):
    """`fill ADDR LEN PATTERN`: the pattern repeats from ADDR, keeping its phase across the
    accesses it is cut into; the last copy is cut short."""
    length = 2 * MiB + 3
    out = mmiobus("fill", "0xc00000", str(length), "de ad be ef", "-s", server.tcp).text()
    assert "filled" in out and "de ad be ef" in out
    expected = (bytes.fromhex("deadbeef") * (length // 4 + 1))[:length]
    got = b"".join(bus.read(0xC00000 + i, min(MiB, length - i)) for i in range(0, length, MiB))
    assert got == expected


def test_fill_with_a_value_uses_the_bus_byte_order(mmiobus, server, bus):
    mmiobus("fill", "-f", "u32", "0xf00000", "12", "0x11223344", "-s", server.tcp).text()
    assert bus.read(0xF00000, 12) == bytes.fromhex("44332211") * 3


def test_transfers_respect_small_limits(mmiobus, tight, tmp_path):
    """On a bus that takes 4 KiB per access and 3 accesses per batch, a 100 KB load, dump
    and fill still work (in many small pieces)."""
    data = image(100_000, 4)
    src, back = tmp_path / "small.bin", tmp_path / "small.back"
    src.write_bytes(data)
    mmiobus("load", str(src), "0x10000", "-s", tight.tcp).text()
    mmiobus("dump", "0x10000", str(len(data)), str(back), "-s", tight.tcp).text()
    assert back.read_bytes() == data
    mmiobus("fill", "0x10000", "50000", "5a", "-s", tight.tcp).text()
    out = mmiobus("read", "-f", "raw", "0x10000", "100000", "-s", tight.tcp)
    assert out.stdout == b"\x5a" * 50_000 + data[50_000:]


def test_a_fault_part_way_through_a_dump_leaves_the_file_as_it_was(mmiobus, server, tmp_path):
    """A dump that runs past the end of RAM: exit 3, one line naming the access that faulted
    and the whole transfer; the file that was there is untouched, and no temporary file is
    left beside it."""
    target = tmp_path / "keep.bin"
    target.write_bytes(b"earlier dump")
    out = mmiobus("dump", hex(RAM_END - MiB), str(2 * MiB), str(target), "-s", server.tcp)
    assert out.returncode == 3
    line = out.one_error_line()
    assert "bus fault: DECODE_ERROR reading" in line
    assert f"part of {2 * MiB} bytes at {RAM_END - MiB:#x}" in line
    assert target.read_bytes() == b"earlier dump"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bin"]


def test_a_load_into_rom_is_a_bus_fault(mmiobus, server, tmp_path):
    src = tmp_path / "rom.bin"
    src.write_bytes(b"\x01" * 64)
    out = mmiobus("load", str(src), hex(ROM), "-s", server.tcp)
    assert out.returncode == 3
    assert "DECODE_ERROR writing 64 bytes at 0xfffc0000" in out.one_error_line()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["read", "0x1000", "0"], ["length 0", "1 or more"]),
        (["dump", "0x1000", "0", "out.bin"], ["length 0", "1 or more"]),
        (["fill", "0x1000", "0", "00"], ["length 0", "1 or more"]),
        (["read", "0xffffffffffffff00", "0x200"], ["0xffffffffffffffff", "shorter"]),
        (["fill", "0x1000", "16", ""], ["holds no bytes", "'de ad be ef'"]),
        (["write", "0x1000", ""], ["holds no bytes", "'de ad be ef'"]),
        (["write", "-f", "raw", "0x1000", ""], ["DATA is empty", "@FILE"]),
    ],
)
def test_transfers_that_would_do_nothing_are_usage_errors(mmiobus, server, argv, words):
    """Length 0, empty data, and a range past the last address: exit 2, one error line naming
    what was wrong and what to write, nothing sent."""
    out = mmiobus(*argv, "-s", server.tcp)
    assert out.returncode == 2, out.stderr
    [line] = out.error_lines()
    for word in words:
        assert word in line


def test_empty_input_is_one_line(mmiobus, server, tmp_path):
    """An empty file or standard input for `load` and `write -f raw`: exit 1, one line naming
    it."""
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    for argv, name in [
        (["load", str(empty), "0x1000"], str(empty)),
        (["load", "-", "0x1000"], "standard input"),
        (["write", "-f", "raw", "0x1000", f"@{empty}"], str(empty)),
        (["write", "-f", "raw", "0x1000", "-"], "standard input"),
    ]:
        out = mmiobus(*argv, "-s", server.tcp)
        assert out.returncode == 1
        line = out.one_error_line()
        assert name in line and "empty" in line


def test_a_progress_bar_shows_at_a_terminal_only(mmiobus, server, tmp_path, monkeypatch):
    """A long transfer draws a progress bar on standard error when that is a terminal, and
    nothing when it is not (a pipe, a log)."""
    src = tmp_path / "bar.bin"
    src.write_bytes(image(3 * MiB, 5))
    quiet = mmiobus("load", str(src), "0x1000000", "-s", server.tcp)
    assert quiet.returncode == 0 and quiet.stderr == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    shown = mmiobus("load", str(src), "0x1000000", "-s", server.tcp)
    assert shown.returncode == 0
    assert "100%" in shown.stderr and "loading bar.bin" in shown.stderr
    small = mmiobus("write", "0x1000", "00", "-s", server.tcp)
    assert small.stderr == ""  # a short transfer draws none
