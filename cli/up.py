"""``mmiobus up``: run a bench file — the bus, its device processes, CPUs, recorders — as
processes, watch its expectations and a live status, and stop it all at the end."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import args as a


def register(sub: Any) -> None:
    """Add ``up`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "up",
        help="run a bench: the bus and its processes, until its expectations are met",
        description="Start the bus a bench file describes, then its processes (recorders, "
        "devices, CPUs, commands) in dependency order, each once the bus is healthy; show "
        "their output prefixed with their names and a live status (devices attached, "
        "accesses per second, faults, trace events lost). Stop everything, in reverse order, "
        "on Ctrl-C, when the expectations are met, or when they time out. Exit status 0 only "
        "when they were met (or, with none, when every run that ends ended well); 1 "
        "otherwise; 130 when stopped before they were met. `mmiobus schema bench` prints the "
        "file's JSON Schema.",
    )
    p.add_argument("bench", metavar="BENCH", help="the bench file (YAML)")
    p.add_argument(
        "--record",
        metavar="FILE",
        help="record the trace of every access to FILE (JSON Lines; Chrome's format when "
        "FILE ends in .json), from before the first device starts",
    )
    p.add_argument(
        "--listen",
        "-l",
        action="append",
        type=a.listen_address,
        metavar="ADDR",
        help="where the bus listens, instead of the bench's bus.listen (repeatable; port 0: "
        "any free port)",
    )
    p.add_argument(
        "--status",
        choices=["auto", "live", "lines", "off"],
        default="auto",
        help="the status line: live (redrawn at the bottom), lines (one every 10 s), off; "
        "auto is live at a terminal, lines otherwise (default: %(default)s)",
    )
    p.add_argument("--no-color", action="store_true", help="no colours (also: $NO_COLOR)")
    p.add_argument(
        "--start-timeout",
        type=a.seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long each process may take to be ready (default: %(default)g)",
    )
    p.set_defaults(func=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    """``mmiobus up``: load and check the bench, then run it."""
    import asyncio

    from mmiobus.testbench.load import load_bench
    from mmiobus.testbench.output import Output
    from mmiobus.testbench.runner import BenchFailure, BenchRun

    bench = load_bench(args.bench)
    output = Output(color=False if args.no_color else None, status=args.status)
    run = BenchRun(bench, output, record=args.record, listen=args.listen,
                   start_timeout=args.start_timeout)  # fmt: skip
    try:
        status = asyncio.run(run.run())
    except BenchFailure as e:
        output.close()
        print(f"mmiobus up: error: {e.lines[0]}", file=sys.stderr)
        for line in e.lines[1:]:
            print(line, file=sys.stderr)
        return e.status
    output.say(f"bench {bench.name}: done")
    return status
