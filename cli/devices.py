"""Device commands about the bus: ``devices`` (who is attached), ``reset-device`` and ``irqs``
(interrupt lines). Running a device is ``device_run``."""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from typing import Any

from . import args as a
from .console import out_json
from .device_run import device_arguments
from .errors import CommandError

__all__ = ["device_arguments", "register"]


def register(sub: Any) -> None:
    """Add ``devices``, ``reset-device`` and ``irqs`` to the subcommands."""
    p = sub.add_parser(
        "devices",
        help="list the attached devices",
        description="One line per attached device: its name, the regions it serves, where it "
        "runs (the peer it connected from, or in the server) and its counters.",
    )
    a.add_json_option(p)
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("reset-device", help="ask a device to reset and wait until it has")
    p.add_argument("name", metavar="NAME", help="the device (`mmiobus devices` lists them)")
    p.add_argument(
        "--wait",
        type=a.seconds,
        default=5.0,
        metavar="SECONDS",
        help="how long the device may take to reset (default: %(default)g)",
    )
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_reset_device)

    p = sub.add_parser(
        "irqs",
        help="interrupt line levels (--watch to follow changes)",
        description="The level of every interrupt line (DEVICE.LINE), or of those LINE names or "
        "globs select. A line exists once its device first sets it.",
    )
    p.add_argument("patterns", nargs="*", metavar="LINE", help="names or globs (uart0.*)")
    p.add_argument("--watch", "-w", action="store_true", help="print every change until ^C")
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON for machines (with --watch: one JSON object per line)",
    )
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_irqs)


def cmd_devices(args: argparse.Namespace) -> int:
    """``mmiobus devices``: one line per attached device, with its counters."""
    with a.connect(args) as bus:
        devices = bus.devices()
    if args.json:
        out_json(
            [
                {
                    "name": d.name,
                    "regions": list(d.regions),
                    "peer": d.peer,
                    "in_server": d.in_process,
                    "accesses": d.accesses,
                    "timeouts": d.timeouts,
                    "dma": d.dma,
                }
                for d in devices
            ]
        )
        return 0
    if not devices:
        print("no device is attached (start one with `mmiobus device run`)")
    for d in devices:
        where = "in the server" if d.in_process else d.peer
        print(
            f"{d.name:<16} {', '.join(d.regions):<24} {where:<24} accesses={d.accesses} "
            f"timeouts={d.timeouts} dma={d.dma}"
        )
    return 0


def cmd_reset_device(args: argparse.Namespace) -> int:
    """``mmiobus reset-device``: reset a device and wait until it has."""
    with a.connect(args) as bus:
        bus.reset_device(args.name, args.wait)
    print(f"device {args.name} has reset")
    return 0


def _selected(name: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _unmatched(patterns: list[str], names: list[str]) -> list[str]:
    return [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]


def _lines_hint(names: list[str]) -> str:
    known = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"the bus has {known}" if names else "the bus has no interrupt line yet"


def cmd_irqs(args: argparse.Namespace) -> int:
    """``mmiobus irqs``: interrupt line levels, or (``--watch``) their changes."""
    with a.connect(args) as bus:
        levels = bus.irqs()
        missing = _unmatched(args.patterns, list(levels))
        if missing and not args.watch:
            raise CommandError(
                f"no interrupt line matches {missing[0]!r} ({_lines_hint(list(levels))}; a "
                "line exists once its device first sets it)"
            )
        if not args.watch:
            chosen = {n: v for n, v in levels.items() if _selected(n, args.patterns)}
            if args.json:
                out_json([{"name": n, "level": int(v)} for n, v in chosen.items()])
            elif not chosen:
                print("no interrupt line yet (a line exists once its device first sets it)")
            else:
                print("".join(f"{name} {int(level)}\n" for name, level in chosen.items()), end="")
            return 0
        for pattern in missing:
            print(
                f"mmiobus irqs: warning: no interrupt line matches {pattern!r} yet; watching "
                "for it",
                file=sys.stderr,
                flush=True,
            )
        for event in bus.watch_irqs(*args.patterns):
            if args.json:
                record: dict[str, Any] = (
                    {"lost": event.lost}
                    if event.lost
                    else {"line": event.line, "level": int(event.level)}
                )
                print(json.dumps(record), flush=True)
            elif event.lost:
                print(f"... {event.lost} changes lost (the watch fell behind) ...", flush=True)
            else:
                print(f"{event.line} {int(event.level)}", flush=True)
    return 0
