"""``mmiobus mtree``, ``mmiobus schema`` and ``mmiobus import-qemu``: machine descriptions,
printed as QEMU prints them, described by their schema, and imported from QEMU."""

from __future__ import annotations

import argparse
import os
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
        description="Print a machine's memory tree in the formats of QEMU 7.2's `info mtree "
        "[-f] [-D]`: the description FILE's; else the running bus's at --server, or at "
        "$MMIOBUS_SERVER when that is set (as for every command that talks to a bus); else the "
        "built-in default machine's. (`MMIOBUS_SERVER= mmiobus mtree` shows the built-in one "
        "while the variable is set.)",
    )
    p.add_argument(
        "file",
        nargs="?",
        help="machine description (YAML) (default: the bus at --server or $MMIOBUS_SERVER if "
        "either is given, else the built-in default machine)",
    )
    p.add_argument("-f", action="store_true", help="print the flat views")
    p.add_argument("-D", action="store_true", help="include disabled regions")
    p.add_argument(
        "--machine",
        "-m",
        metavar="NAME",
        help="a built-in machine instead of FILE (`mmiobus machines` lists them)",
    )
    a.add_server_option(
        p,
        help="print this running bus's tree (default: $MMIOBUS_SERVER if set, else no bus: "
        "the built-in machine)",
    )
    a.add_timeout_option(p)
    p.set_defaults(func=cmd_mtree)

    p = sub.add_parser(
        "import-qemu",
        help="turn QEMU `info mtree -D` + `info mtree -f` output into a machine description",
    )
    p.add_argument(
        "dump", metavar="DUMP", help="text pasted from a QEMU monitor session ('-' for stdin)"
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write the YAML here instead of standard output"
    )
    p.set_defaults(func=cmd_import_qemu)

    p = sub.add_parser(
        "schema", help="print the JSON Schema of machine descriptions (or of bench files)"
    )
    p.add_argument(
        "format",
        nargs="?",
        choices=["machine", "bench"],
        default="machine",
        help="machine descriptions, or bench files (`mmiobus up`) (default: %(default)s)",
    )
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "machines",
        help="list the built-in machines (`serve --machine NAME`, `mtree --machine NAME`)",
    )
    p.set_defaults(func=cmd_machines)


def cmd_machines(args: argparse.Namespace) -> int:
    """``mmiobus machines``: the built-in machines, one per line with what they are."""
    from mmiobus.machine.builtin import builtin_machines

    machines = builtin_machines()
    width = max(map(len, machines))
    out("".join(f"{name:<{width}}  {summary}\n" for name, summary in machines.items()))
    return 0


def cmd_mtree(args: argparse.Namespace) -> int:
    """``mmiobus mtree``: a description's (or a running bus's) tree as QEMU prints it."""
    if sum(map(bool, (args.server, args.file, args.machine))) > 1:
        raise UsageError("give one of FILE, --machine NAME or --server ADDR")
    if args.server or (not args.file and not args.machine and os.environ.get("MMIOBUS_SERVER")):
        with a.connect(args) as bus:
            out(bus.mtree(flat=args.f, disabled=args.D))
        return 0
    from mmiobus.machine import Machine
    from mmiobus.memory import mtree

    if args.file:
        machine = Machine.from_file(args.file)
    else:
        machine = Machine.builtin(args.machine or "default")
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
    """``mmiobus schema [machine|bench]``: the JSON Schema of machine descriptions or benches."""
    if args.format == "bench":
        from mmiobus.testbench.schema import json_schema as bench_schema

        out(bench_schema())
        return 0
    from mmiobus.machine.schema import json_schema

    out(json_schema())
    return 0
