"""``mmiobus read`` and ``mmiobus write``: bytes and values at a bus address, of any length (cut
into accesses within the server's limits), and how a bus fault reads on the command line."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import args as a
from .console import out, out_bytes, out_json, progress
from .errors import CommandError, Fault, UsageError

if TYPE_CHECKING:
    from mmiobus.client import Bus, BusFault
    from mmiobus.client.core import ByteOrder

FORMATS = ["hex", "raw", "u8", "u16", "u32", "u64"]
WIDTHS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}

# What each MemTxResult bit means for the person who hit it, and where to look.
_FAULT_HINTS = {
    "DECODE_ERROR": "nothing answers there (`mmiobus mtree -f` shows what is mapped)",
    "ERROR": "the device failed the access or is not attached (see `mmiobus regions`)",
    "ACCESS_ERROR": "the region refuses this access: its size, alignment or attributes",
}


def register(sub: Any) -> None:
    """Add ``read`` and ``write`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "read",
        help="read bytes from the bus",
        description="Read LEN bytes (default 4, or one value with --format uN) at ADDR and "
        "print them; any length works (it is cut into accesses within the server's limits). "
        "Exit status 3 if the bus answered with a fault (then nothing is printed on standard "
        "output).",
    )
    p.add_argument("addr", type=a.address, metavar="ADDR", help="bus address, e.g. 0x1000")
    p.add_argument(
        "length",
        type=a.transfer_length,
        nargs="?",
        metavar="LEN",
        help="bytes to read, e.g. 16, 0x100 or 4K (default: 4, or one value with --format uN)",
    )
    p.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        default="hex",
        help="hex: a hexdump; raw: the bytes; uN: values in the bus's byte order "
        "(default: %(default)s)",
    )
    a.add_json_option(p)
    a.add_client_options(p)
    p.set_defaults(func=cmd_read)

    p = sub.add_parser(
        "write",
        help="write bytes to the bus",
        description="Write DATA at ADDR; any length works (it is cut into accesses within the "
        "server's limits). Exit status 3 if the bus answered with a fault.",
    )
    p.add_argument("addr", type=a.address, metavar="ADDR", help="bus address, e.g. 0x1000")
    p.add_argument(
        "data",
        metavar="DATA",
        help="hex bytes (deadbeef, 'de ad be ef'); a number with --format uN; with --format "
        "raw: the text itself, @FILE, or - for standard input",
    )
    p.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        default="hex",
        help="how DATA is written: hex bytes, raw text/@FILE/-, or a uN value stored in the "
        "bus's byte order (default: %(default)s)",
    )
    a.add_client_options(p)
    p.set_defaults(func=cmd_write)


# -- bus faults ------------------------------------------------------------------------------


def fault(error: BusFault, addr: int, size: int) -> Fault:
    """The one line for a transfer of ``size`` bytes at ``addr`` that faulted at ``error``'s
    access: the result, where, what it means."""
    from mmiobus.wire import result_names

    names = result_names(error.result)
    doing = "writing" if error.is_write else "reading"
    where = f"{doing} {error.size} byte{'s' if error.size != 1 else ''} at {error.addr:#x}"
    if (error.addr, error.size) != (addr, size):
        where += f" (part of {size} bytes at {addr:#x})"
    hints = [h for n, h in _FAULT_HINTS.items() if n in names.split("|")]
    return Fault(f"{names} {where}" + (f": {'; '.join(hints)}" if hints else ""), names)


# -- read --------------------------------------------------------------------------------------


def hexdump(addr: int, data: bytes) -> str:
    """Lines of 16 bytes, each prefixed with its bus address, with an ASCII column."""
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i : i + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{(addr + i) & ((1 << 64) - 1):016x}  {hexes:<47}  |{text}|")
    return "\n".join(lines) + ("\n" if lines else "")


def read_bytes(bus: Bus, addr: int, size: int, what: str = "reading") -> bytes:
    """``size`` bytes at ``addr`` (the command's address space and attributes), with a
    progress bar when long; a ``Fault`` if the bus faults, a ``UsageError`` past 2**64."""
    from mmiobus.client import BusFault
    from mmiobus.client.transfer import read_range

    check_range(addr, size)
    try:
        with progress(size, what) as step:
            return read_range(bus, addr, size, progress=step)
    except BusFault as e:
        raise fault(e, addr, size) from None


def check_range(addr: int, size: int) -> None:
    """A ``UsageError`` if ``size`` bytes from ``addr`` run past the last bus address."""
    if addr + size > 1 << 64:
        raise UsageError(
            f"{size} bytes at {addr:#x} run past the last address, 0xffffffffffffffff: "
            "give a shorter length"
        )


def cmd_read(args: argparse.Namespace) -> int:
    """``mmiobus read``: print LEN bytes at ADDR (exit 3 and nothing on stdout on a fault)."""
    fmt = args.format
    width = WIDTHS.get(fmt, 1)
    size = args.length if args.length is not None else (width if fmt in WIDTHS else 4)
    if size % width:
        raise CommandError(f"--format {fmt} needs a length that is a multiple of {width}")
    check_range(args.addr, size)
    with a.connect(args) as bus:
        order = bus.byteorder
        space = args.address_space or bus.info.address_spaces[0].id
        record: dict[str, Any] = {"address_space": space, "addr": args.addr, "size": size}
        try:
            data = read_bytes(bus, args.addr, size)
        except Fault as e:
            if args.json:
                out_json({**record, "result": e.result, "data": None})
            raise
    values = [int.from_bytes(data[i : i + width], order) for i in range(0, size, width)]
    if args.json:
        record.update(result="OK", data=data.hex())
        if fmt in WIDTHS:
            record["values"] = values
        out_json(record)
    elif fmt == "raw":
        out_bytes(data)
    elif fmt == "hex":
        out(hexdump(args.addr, data))
    else:
        out("".join(f"{v:#0{2 + 2 * width}x}\n" for v in values))
    return 0


# -- write -------------------------------------------------------------------------------------

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
    if not text:
        raise UsageError(f"{data!r} holds no bytes: give hex bytes such as 'de ad be ef'")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CommandError(f"{data!r} is not hex bytes (e.g. deadbeef or 'de ad be ef')") from None


def _bytes(args: argparse.Namespace) -> bytes:
    """DATA with --format hex or raw (no bus needed to know them); never empty."""
    data = args.data
    if args.format == "hex":
        return hex_bytes(data)
    if data == "-":
        got = sys.stdin.buffer.read()
        where = "standard input"
    elif data.startswith("@"):
        where = data[1:]
        try:
            got = Path(where).read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read {where}: {e.strerror}") from None
    else:
        if not data:
            raise UsageError("DATA is empty: nothing to write (give the text, @FILE or -)")
        return data.encode()
    if not got:
        raise CommandError(f"{where} is empty: nothing to write")
    return got


def _value(args: argparse.Namespace, order: ByteOrder) -> bytes:
    """DATA with --format uN: a number, stored in the bus's byte order."""
    from mmiobus.client.core import encode_value

    try:
        return encode_value(a.number(args.data), WIDTHS[args.format], order)
    except (ValueError, argparse.ArgumentTypeError) as e:
        raise CommandError(str(e)) from None


def write_bytes(bus: Bus, addr: int, data: bytes, what: str = "writing") -> None:
    """Write ``data`` at ``addr`` as ``read_bytes`` reads: progress when long, ``Fault``."""
    from mmiobus.client import BusFault
    from mmiobus.client.transfer import write_range

    check_range(addr, len(data))
    try:
        with progress(len(data), what) as step:
            write_range(bus, addr, data, progress=step)
    except BusFault as e:
        raise fault(e, addr, len(data)) from None


def cmd_write(args: argparse.Namespace) -> int:
    """``mmiobus write``: write DATA at ADDR (exit 3 on a fault)."""
    data = None if args.format in WIDTHS else _bytes(args)  # refuse bad data before connecting
    if data is not None:
        check_range(args.addr, len(data))
    with a.connect(args) as bus:
        if data is None:
            data = _value(args, bus.byteorder)
        write_bytes(bus, args.addr, data)
    return 0
