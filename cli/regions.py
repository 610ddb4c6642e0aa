"""``mmiobus regions``: every region of the bus with its kind, where it sits in its container
and in the address space that shows it, the device the description names for it, what it
answers while that device is away, its answer deadline, and who serves it now."""

from __future__ import annotations

import argparse
import fnmatch
from typing import TYPE_CHECKING, Any

from . import args as a
from .console import out, out_json

if TYPE_CHECKING:
    from mmiobus.v1 import bus_pb2, devices_pb2

COLUMNS = ("REGION", "KIND", "IN CONTAINER", "IN ADDRESS SPACE", "DEVICE", "ABSENT", "DEADLINE")

# What a region whose device is away answers, as its `absent:` setting says.
AWAY = {
    "error": "answers MEMTX_ERROR",
    "unassigned": "answers as unassigned",
    "ram": "answers from scratch RAM",
}


def register(sub: Any) -> None:
    """Add ``regions`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "regions",
        help="list the bus's regions: kind, ranges, device, absent, deadline, who serves it",
        description="One line per region of the running bus, in creation order: its kind; its "
        "range in its container; its range in the address space whose tree holds it; for a "
        "region served by a device, the device's name, what the region answers while the "
        "device is away (absent), how long an access waits for an answer (deadline) and who "
        "serves it now.",
    )
    p.add_argument(
        "patterns", nargs="*", metavar="REGION", help="region ids or globs (default: all)"
    )
    a.add_json_option(p)
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_regions)


def _span(start: int, size: int) -> str:
    return f"{start:#x}-{start + size - 1:#x}" if size else f"{start:#x} (empty)"


def describe(
    topology: bus_pb2.Topology, devices: list[devices_pb2.DeviceInfo]
) -> list[dict[str, Any]]:
    """One record per region (see the module docstring), JSON-friendly."""
    from mmiobus.v1 import bus_pb2 as pb
    from mmiobus.wire import size_from_pb

    by_id = {r.id: r for r in topology.regions}
    roots = {s.root: s.id for s in topology.address_spaces}
    attached = {d.name: d for d in devices}
    records = []
    for r in topology.regions:
        size = size_from_pb(r.size)
        # Walk up the containers: the address space whose root holds the region shows it at
        # the sum of the offsets (while every region on the way is enabled).
        shown: list[dict[str, Any]] = []
        start, node, enabled = 0, r, r.enabled
        while True:
            if node.id in roots:
                shown.append({"address_space": roots[node.id], "start": start, "size": size})
            if not node.container or node.container not in by_id:
                break
            start += node.addr
            node = by_id[node.container]
            enabled = enabled and node.enabled
        served = None
        if r.device:
            d = attached.get(r.device)
            served = {
                "device": r.device,
                "peer": d.peer if d is not None else "",
                "in_server": bool(d.in_process) if d is not None else False,
            }
        records.append(
            {
                "id": r.id,
                "name": r.name,
                "kind": pb.RegionKind.Name(r.kind).lower(),
                "container": r.container,
                "addr": r.addr,
                "size": size,
                "priority": r.priority,
                "enabled": enabled,
                "address_ranges": shown,
                "device": r.declared_device or r.device,
                "device_class": r.device_class,
                "absent": r.absent,
                "deadline_ms": r.deadline_ms,
                "served_by": served,
            }
        )
    return records


def _served(rec: dict[str, Any]) -> str:
    served = rec["served_by"]
    if served is not None:
        if served["in_server"]:
            return f"{served['device']} in the server ({rec['device_class'] or 'model'})"
        return f"{served['device']} at {served['peer']}" if served["peer"] else served["device"]
    if rec["device"]:
        return f"nobody: {AWAY.get(rec['absent'], 'away')}"
    return "-"


def table(records: list[dict[str, Any]]) -> str:
    """The records as aligned columns, with a SERVED BY column last."""
    rows = [(*COLUMNS, "SERVED BY")]
    for rec in records:
        where = (
            f"{rec['container']}:{_span(rec['addr'], rec['size'])}"
            if rec["container"]
            else "- (top level)"
        )
        spaces = ", ".join(
            f"{s['address_space']}:{_span(s['start'], s['size'])}" for s in rec["address_ranges"]
        )
        if spaces and not rec["enabled"]:
            spaces += " (disabled)"
        rows.append(
            (
                rec["id"],
                rec["kind"],
                where,
                spaces or "-",
                rec["device"] or "-",
                rec["absent"] or "-",
                f"{rec['deadline_ms']}ms" if rec["deadline_ms"] else "-",
                _served(rec),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        + "\n"
        for row in rows
    )


def cmd_regions(args: argparse.Namespace) -> int:
    """``mmiobus regions``: the regions of the bus, as a table or (``--json``) records."""
    from .errors import CommandError

    with a.connect(args) as bus:
        records = describe(bus.topology(flat_views=False), bus.devices())
    if args.patterns:
        unmatched = [
            p for p in args.patterns if not any(fnmatch.fnmatchcase(r["id"], p) for r in records)
        ]
        if unmatched:
            raise CommandError(
                f"no region matches {unmatched[0]!r} (`mmiobus regions` lists them all)"
            )
        records = [
            r for r in records if any(fnmatch.fnmatchcase(r["id"], p) for p in args.patterns)
        ]
    if args.json:
        out_json(records)
    else:
        out(table(records))
    return 0
