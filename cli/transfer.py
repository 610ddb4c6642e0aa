"""``mmiobus load``, ``mmiobus dump`` and ``mmiobus fill``: files and patterns of any size in
and out of the bus (a firmware image, a RAM snapshot, a cleared buffer), cut into accesses
within the server's limits, with a progress bar on long transfers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import args as a
from .console import OutputFile, out_bytes, progress
from .errors import CommandError
from .memory import WIDTHS, check_range, fault, hex_bytes, read_bytes, write_bytes

PATTERN_FORMATS = ["hex", "u8", "u16", "u32", "u64"]


def register(sub: Any) -> None:
    """Add ``load``, ``dump`` and ``fill`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "load",
        help="write a file's bytes to the bus (a firmware image, say)",
        description="Write the bytes of FILE ('-' for standard input) at ADDR. Exit status 3 "
        "if the bus answers with a fault (the bytes before it were written).",
    )
    p.add_argument("file", metavar="FILE", help="the bytes to write ('-': standard input)")
    p.add_argument("addr", type=a.address, metavar="ADDR", help="where the first byte goes")
    a.add_client_options(p)
    p.set_defaults(func=cmd_load)

    p = sub.add_parser(
        "dump",
        help="read bytes from the bus into a file",
        description="Read LEN bytes at ADDR into FILE ('-' for standard output). FILE is "
        "replaced only when every byte was read: exit status 3 on a bus fault, and FILE is "
        "left as it was.",
    )
    p.add_argument("addr", type=a.address, metavar="ADDR", help="the first address to read")
    p.add_argument("length", type=a.transfer_length, metavar="LEN", help="e.g. 0x1000 or 4M")
    p.add_argument("file", metavar="FILE", help="where the bytes go ('-': standard output)")
    a.add_client_options(p)
    p.set_defaults(func=cmd_dump)

    p = sub.add_parser(
        "fill",
        help="fill bytes of the bus with a byte or a pattern",
        description="Write PATTERN over LEN bytes from ADDR, repeated (the last copy cut short "
        "if LEN is not a multiple of its length). Exit status 3 on a bus fault.",
    )
    p.add_argument("addr", type=a.address, metavar="ADDR", help="the first address to fill")
    p.add_argument("length", type=a.transfer_length, metavar="LEN", help="e.g. 0x1000 or 4K")
    p.add_argument(
        "pattern",
        metavar="PATTERN",
        help="hex bytes (00, 'de ad be ef'), or a number with --format uN",
    )
    p.add_argument(
        "--format",
        "-f",
        choices=PATTERN_FORMATS,
        default="hex",
        help="hex bytes, or a uN value repeated in the bus's byte order (default: %(default)s)",
    )
    a.add_client_options(p)
    p.set_defaults(func=cmd_fill)


def cmd_load(args: argparse.Namespace) -> int:
    """``mmiobus load``: FILE's bytes at ADDR."""
    if args.file == "-":
        data, name = sys.stdin.buffer.read(), "standard input"
    else:
        name = args.file
        try:
            data = Path(args.file).read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read {args.file}: {e.strerror or e}") from None
    if not data:
        raise CommandError(f"{name} is empty: nothing to load")
    check_range(args.addr, len(data))
    with a.connect(args) as bus:
        write_bytes(bus, args.addr, data, what=f"loading {Path(name).name}")
    print(f"loaded {len(data)} bytes from {name} at {args.addr:#x}")
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    """``mmiobus dump``: LEN bytes at ADDR into FILE, replaced only if all were read."""
    check_range(args.addr, args.length)
    target = None if args.file == "-" else OutputFile(args.file, binary=True)
    done = False
    try:
        with a.connect(args) as bus:
            data = read_bytes(bus, args.addr, args.length, what="dumping")
        if target is None:
            out_bytes(data)
        else:
            target.file.write(data)
        done = True
    finally:
        if target is not None:
            target.close(keep=done)
    if target is not None:
        print(f"dumped {len(data)} bytes at {args.addr:#x} to {args.file}")
    return 0


def cmd_fill(args: argparse.Namespace) -> int:
    """``mmiobus fill``: PATTERN repeated over LEN bytes from ADDR."""
    from mmiobus.client import BusFault
    from mmiobus.client.core import encode_value
    from mmiobus.client.transfer import fill_range

    check_range(args.addr, args.length)
    pattern = None if args.format in WIDTHS else hex_bytes(args.pattern)
    with a.connect(args) as bus:
        if pattern is None:
            try:
                pattern = encode_value(a.number(args.pattern), WIDTHS[args.format], bus.byteorder)
            except (ValueError, argparse.ArgumentTypeError) as e:
                raise CommandError(f"PATTERN {args.pattern}: {e}") from None
        try:
            with progress(args.length, "filling") as step:
                fill_range(bus, args.addr, args.length, pattern, progress=step)
        except BusFault as e:
            raise fault(e, args.addr, args.length) from None
    print(f"filled {args.length} bytes at {args.addr:#x} with {pattern.hex(' ')}")
    return 0
