"""``mmiobus info``: what the server is (version, byte order, address spaces, limits), for
people by default and as the ``Info`` message's JSON with ``--json``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from . import args as a
from .console import out

if TYPE_CHECKING:
    from mmiobus.v1 import bus_pb2


def register(sub: Any) -> None:
    """Add ``info`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "info",
        help="what the server is: version, byte order, address spaces, limits",
        description="What the bus is: its version and protocol, the machine it serves, its "
        "byte order, its address spaces, and the limits a request must respect (each named "
        "after the `mmiobus serve` option that sets it).",
    )
    a.add_json_option(p)
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_info)


def _bytes(n: int) -> str:
    """``n`` bytes as people say it: 1 MiB, 64 KiB, 1000 bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def text(info: bus_pb2.Info, server: str) -> str:
    """``info`` as lines for people."""
    from mmiobus.v1 import bus_pb2 as pb

    lim = info.limits
    spaces = ", ".join(f"{s.id} (root: {s.root})" for s in info.address_spaces) or "none"
    rows = [
        ("server", f"{server}, mmiobus {info.version}, protocol {info.protocol_version}"),
        ("machine", info.machine),
        ("byte order", pb.Endianness.Name(info.endianness).lower() + "-endian"),
        ("address spaces", spaces),
        ("per access", f"{_bytes(lim.max_access_bytes)} (--max-access-bytes)"),
        ("per batch", f"{_bytes(lim.max_batch_bytes)} (--max-batch-bytes), "
                      f"{lim.max_batch_accesses} accesses (--max-batch-accesses)"),
        ("per transaction", f"{lim.max_topology_ops} operations (--max-topology-ops)"),
        ("per message", f"{_bytes(lim.max_message_bytes)} (--max-message-bytes)"),
    ]  # fmt: skip
    cpus = ", ".join(f"{c.name} ({c.arch}, {c.board})" for c in getattr(info, "cpus", []))
    if cpus:
        rows.insert(4, ("cpus", cpus))
    width = max(len(k) for k, _ in rows) + 1
    return "".join(f"{k + ':':<{width}} {v}\n" for k, v in rows)


def cmd_info(args: argparse.Namespace) -> int:
    """``mmiobus info``: the server's ``Info``, as text or (``--json``) JSON."""
    with a.connect(args) as bus:
        if args.json:
            from google.protobuf import json_format

            out(json_format.MessageToJson(bus.info, indent=2) + "\n")
        else:
            out(text(bus.info, bus.address))
    return 0
