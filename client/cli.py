"""The ``mmiobus`` command line.

Each subcommand is a small function; errors are one line on stderr and a non-zero exit status.
Heavy imports happen inside the commands so that ``mmiobus --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_ERROR = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line (no traceback)."""


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# -- local machine commands ------------------------------------------------------------------


def cmd_mtree(args: argparse.Namespace) -> int:
    from mmiobus.server import mtree
    from mmiobus.server.machine import Machine

    machine = Machine.from_file(args.file) if args.file else Machine.default()
    _out(mtree(machine.system, flat=args.f, show_disabled=args.D))
    return 0


def cmd_import_qemu(args: argparse.Namespace) -> int:
    from mmiobus.server.qemu_import import import_dump, to_yaml

    text = sys.stdin.read() if args.dump == "-" else _read_text(args.dump)
    desc, warnings = import_dump(text)
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
        _out(text_out)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from mmiobus.server.description import json_schema

    _out(json_schema())
    return 0


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}") from None


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmiobus",
        description="A networked memory bus with QEMU's memory model.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "mtree",
        help="print a machine's memory tree as QEMU's `info mtree` does",
        description="Print a machine description (or the built-in default machine) in the "
        "formats of QEMU 7.2's `info mtree [-f] [-D]`.",
    )
    p.add_argument("file", nargs="?", help="machine description (YAML); default: built-in")
    p.add_argument("-f", action="store_true", help="print the flat views")
    p.add_argument("-D", action="store_true", help="include disabled regions")
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
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from mmiobus.server.description import DescriptionError
    from mmiobus.server.errors import MemoryModelError
    from mmiobus.server.qemu_import import ImportError_

    return (CommandError, DescriptionError, MemoryModelError, ImportError_, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except _known_errors() as e:
        for line in str(e).splitlines() or [type(e).__name__]:
            print(f"mmiobus {args.command}: error: {line}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
