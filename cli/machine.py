"""``mmiobus mtree``, ``mmiobus schema`` and ``mmiobus import-qemu``: machine descriptions,
printed as QEMU prints them, described by their schema, and imported from QEMU."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import args as a
from .console import out, read_text
from .errors import UsageError


def register(sub: Any) -> None:
    """Add ``mtree``, ``import-qemu`` and ``schema`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "mtree",
        help="print a machine's memory tree as QEMU's `info mtree` does",
        description="Print a machine description (or the built-in default machine) in the "
        "formats of QEMU 7.2's `info mtree [-f] [-D]`.",
    )
    p.add_argument("file", nargs="?", help="machine description (YAML); default: built-in")
    p.add_argument("-f", action="store_true", help="print the flat views")
    p.add_argument("-D", action="store_true", help="include disabled regions")
    a.add_server_option(p, help="print a running bus's tree instead")
    a.add_timeout_option(p)
    p.set_defaults(func=cmd_mtree)

    p = sub.add_parser(
        "import-qemu",
        help="turn QEMU `info mtree -D` + `info mtree -f` output into a machine description",
    )
    p.add_argument("dump", help="text pasted from a QEMU monitor session ('-' for stdin)")
    p.add_argument("-o", "--output", help="write the YAML here instead of standard output")
    p.set_defaults(func=cmd_import_qemu)

    p = sub.add_parser("schema", help="print the JSON Schema of machine descriptions")
    p.set_defaults(func=cmd_schema)


def cmd_mtree(args: argparse.Namespace) -> int:
    """``mmiobus mtree``: a description's (or a running bus's) tree as QEMU prints it."""
    if args.server:
        if args.file:
            raise UsageError("give either a FILE or --server, not both")
        with a.connect(args) as bus:
            out(bus.mtree(flat=args.f, disabled=args.D))
        return 0
    from mmiobus.machine import Machine
    from mmiobus.memory import mtree

    machine = Machine.from_file(args.file) if args.file else Machine.default()
    out(mtree(machine.system, flat=args.f, show_disabled=args.D))
    return 0


def cmd_import_qemu(args: argparse.Namespace) -> int:
    """``mmiobus import-qemu``: a machine description from QEMU's ``info mtree`` output."""
    from mmiobus.machine.qemu_import import import_dump, to_yaml

    desc, warnings = import_dump(read_text(args.dump))
    for w in warnings:
        print(f"mmiobus import-qemu: warning: {w}", file=sys.stderr)
    source = "standard input" if args.dump == "-" else Path(args.dump).name
    header = (
        f"Imported from QEMU `info mtree -D` / `info mtree -f` output ({source}) by "
        "`mmiobus import-qemu`.\n"
        "`mmiobus mtree -f` on this file prints the flat views QEMU printed."
    )
    text_out = to_yaml(desc, header)
    if args.output:
        Path(args.output).write_text(text_out)
    else:
        out(text_out)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """``mmiobus schema``: the JSON Schema of machine descriptions."""
    from mmiobus.machine.schema import json_schema

    out(json_schema())
    return 0
