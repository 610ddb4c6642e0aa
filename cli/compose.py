"""``mmiobus compose``: write the Compose file that runs a bench as containers."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .console import out
from .errors import CommandError


def register(sub: Any) -> None:
    """Add ``compose`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "compose",
        help="write the Compose file that runs a bench as containers",
        description="Write a Compose file for a bench: one image, a service for the bus and "
        "one for each process, each started once the bus is healthy (devices: healthy once "
        "attached), the bench's credentials as Compose secrets. `docker compose -f FILE up` "
        "runs it. The bench's compose: section says which image, where its folder is in the "
        "containers, and whether to mount it there.",
    )
    p.add_argument("bench", metavar="BENCH", help="the bench file (YAML)")
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write it here (default: standard output; paths in it are then relative to the "
        "current folder)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing: exit 1 if --output FILE is not what the bench generates",
    )
    p.set_defaults(func=cmd_compose)


def cmd_compose(args: argparse.Namespace) -> int:
    """``mmiobus compose``: the Compose file of a bench."""
    from mmiobus.testbench.compose import compose_file, to_yaml
    from mmiobus.testbench.load import load_bench

    bench = load_bench(args.bench)
    target = Path(args.output) if args.output else Path("docker-compose.yml")
    if args.check and not args.output:
        raise CommandError("--check compares with --output FILE: say which file")
    rel = os.path.relpath(Path(args.bench).resolve(), target.resolve().parent)
    command = f"mmiobus compose {rel}" + (f" -o {target.name}" if args.output else "")
    header = (
        f"Generated from the bench {rel} by\n  {command}\n"
        "Change the bench and run that again, rather than editing this file."
    )
    text = to_yaml(compose_file(bench, target), bench, header)
    if args.check:
        try:
            current = target.read_text()
        except OSError as e:
            raise CommandError(f"cannot read {target}: {e.strerror or e}") from None
        if current != text:
            raise CommandError(f"{target} is not what {args.bench} generates: run `{command}`")
        return 0
    if args.output:
        target.write_text(text)
    else:
        out(text)
    return 0
