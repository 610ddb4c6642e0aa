"""``mmiobus info``: what the server is (version, byte order, address spaces, limits)."""

from __future__ import annotations

import argparse
from typing import Any

from . import args as a
from .console import out


def register(sub: Any) -> None:
    """Add ``info`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser("info", help="what the server is: version, byte order, limits")
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    """``mmiobus info``: the server's ``Info`` as JSON."""
    from google.protobuf import json_format

    with a.connect(args) as bus:
        out(json_format.MessageToJson(bus.info, indent=2) + "\n")
    return 0
