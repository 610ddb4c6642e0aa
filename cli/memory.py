"""``mmiobus read`` and ``mmiobus write``: bytes and values at a bus address."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import args as a
from .console import out, out_bytes
from .errors import EXIT_FAULT, CommandError

if TYPE_CHECKING:
    from mmiobus.client.core import ByteOrder

FORMATS = ["hex", "raw", "u8", "u16", "u32", "u64"]
WIDTHS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}


def register(sub: Any) -> None:
    """Add ``read`` and ``write`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "read",
        help="read bytes from the bus",
        description="Read LEN bytes (default 4, or one value with --format uN) at ADDR and "
        "print them. Exit status 3 if the bus answered with a fault (then nothing is printed "
        "on standard output).",
    )
    p.add_argument("addr", type=a.address, metavar="ADDR")
    p.add_argument("length", type=a.length, nargs="?", metavar="LEN")
    p.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        default="hex",
        help="hex: a hexdump (default); raw: the bytes; uN: values in the bus's byte order",
    )
    a.add_client_options(p)
    p.set_defaults(func=cmd_read)

    p = sub.add_parser(
        "write",
        help="write bytes to the bus",
        description="Write DATA at ADDR. Exit status 3 if the bus answered with a fault.",
    )
    p.add_argument("addr", type=a.address, metavar="ADDR")
    p.add_argument(
        "data",
        metavar="DATA",
        help="hex bytes (deadbeef, 'de ad be ef'); a number with --format uN; with --format "
        "raw: the text itself, @FILE, or - for standard input",
    )
    p.add_argument("--format", "-f", choices=FORMATS, default="hex")
    a.add_client_options(p)
    p.set_defaults(func=cmd_write)


def hexdump(addr: int, data: bytes) -> str:
    """Lines of 16 bytes, each prefixed with its bus address, with an ASCII column."""
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i : i + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{(addr + i) & ((1 << 64) - 1):016x}  {hexes:<47}  |{text}|")
    return "\n".join(lines) + ("\n" if lines else "")


def cmd_read(args: argparse.Namespace) -> int:
    """``mmiobus read``: print LEN bytes at ADDR (exit 3 and nothing on stdout on a fault)."""
    from mmiobus.wire import result_names

    fmt = args.format
    width = WIDTHS.get(fmt, 1)
    size = args.length if args.length is not None else (width if fmt in WIDTHS else 4)
    if size % width:
        raise CommandError(f"--format {fmt} needs a length that is a multiple of {width}")
    with a.connect(args) as bus:
        r = bus.read(args.addr, size, check=False)
        order = bus.byteorder
    if r.result:
        # The bus answered with a fault: its data is no answer, so print none of it.
        print(
            f"mmiobus read: bus fault: {result_names(r.result)} reading {size} bytes at "
            f"{args.addr:#x}",
            file=sys.stderr,
        )
        return EXIT_FAULT
    if fmt == "raw":
        out_bytes(r.data)
    elif fmt == "hex":
        out(hexdump(args.addr, r.data))
    else:
        values = [int.from_bytes(r.data[i : i + width], order) for i in range(0, size, width)]
        out("".join(f"{v:#0{2 + 2 * width}x}\n" for v in values))
    return 0


_NUMBER = re.compile(r"^0[xX][0-9a-fA-F_]+$")


def hex_bytes(data: str) -> bytes:
    """DATA in the default format: hex bytes, with spaces, colons or underscores between them.
    A number written with ``0x`` is refused: its bytes in memory depend on the byte order, so
    ``-f uN`` (a value) or spaced bytes (an order) must say which is meant."""
    if _NUMBER.match(data.strip()):
        digits = data.strip()[2:].replace("_", "")
        digits = "0" * (len(digits) % 2) + digits
        pairs = " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))
        width = next((f for f, w in WIDTHS.items() if 2 * w >= len(digits)), None)
        value = f"`-f {width}` to store the value in the bus's byte order, or " if width else ""
        raise CommandError(
            f"{data!r} looks like a number, whose bytes depend on the byte order: write "
            f"{value}'{pairs}' for these bytes in this order"
        )
    text = data.replace(" ", "").replace(":", "").replace("_", "")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CommandError(f"{data!r} is not hex bytes (e.g. deadbeef or 'de ad be ef')") from None


def _bytes(args: argparse.Namespace) -> bytes:
    """DATA with --format hex or raw (no bus needed to know them)."""
    data = args.data
    if args.format == "hex":
        return hex_bytes(data)
    if data == "-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read {data[1:]}: {e.strerror}") from None
    return data.encode()


def _value(args: argparse.Namespace, order: ByteOrder) -> bytes:
    """DATA with --format uN: a number, stored in the bus's byte order."""
    from mmiobus.client.core import encode_value

    try:
        return encode_value(a.number(args.data), WIDTHS[args.format], order)
    except (ValueError, argparse.ArgumentTypeError) as e:
        raise CommandError(str(e)) from None


def cmd_write(args: argparse.Namespace) -> int:
    """``mmiobus write``: write DATA at ADDR (exit 3 on a fault)."""
    from mmiobus.wire import result_names

    data = None if args.format in WIDTHS else _bytes(args)  # refuse bad data before connecting
    with a.connect(args) as bus:
        if data is None:
            data = _value(args, bus.byteorder)
        result = bus.write(args.addr, data, check=False)
    if result:
        print(
            f"mmiobus write: bus fault: {result_names(result)} writing {len(data)} bytes at "
            f"{args.addr:#x}",
            file=sys.stderr,
        )
        return EXIT_FAULT
    return 0
