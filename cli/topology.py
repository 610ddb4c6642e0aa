"""``mmiobus apply``: topology operations from a YAML file, applied all together or not at all."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import args as a
from .console import read_text
from .errors import CommandError


def register(sub: Any) -> None:
    """Add ``apply`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "apply",
        help="apply topology operations from a YAML file, all or none",
        description="Apply the operations in FILE ('-' for stdin) as one transaction. "
        "FILE is a list such as:  - add_subregion: {parent: system, child: scratch, addr: 0x1000}",
    )
    p.add_argument("file", metavar="FILE")
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_apply)


def cmd_apply(args: argparse.Namespace) -> int:
    """``mmiobus apply``: the operations of a YAML file, as one transaction."""
    from mmiobus.client.topology import from_yaml

    text = read_text(args.file)
    stdin = args.file == "-"
    try:
        ops = from_yaml(
            text,
            Path(".") if stdin else Path(args.file).parent,
            source="<stdin>" if stdin else args.file,
        )
    except ValueError as e:
        raise CommandError(str(e)) from None
    with a.connect(args) as bus:
        reply = bus.apply(ops)
    print(
        f"applied {reply.applied} operation{'s' if reply.applied != 1 else ''} "
        f"(topology generation {reply.generation})"
    )
    return 0
