"""``mmiobus trace`` (watch or record the accesses the bus serves) and ``mmiobus replay``
(re-issue a recording's client accesses and report what now differs)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import args as a
from .console import OutputFile, read_text, run_until_interrupted
from .errors import EXIT_DIFFERENT, CommandError

# trace_request's parameter names, as the options that set them.
_OPTIONS = {
    "sample_rate": "--sample",
    "max_data_bytes": "--max-data",
    "queue_capacity": "--queue",
}


def register(sub: Any) -> None:
    """Add ``trace`` and ``replay`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "trace",
        help="watch the accesses the bus serves, live",
        description="Print (or record) every access that passes the filters: client accesses "
        "and device DMA. Filtering happens in the server. A subscriber that falls behind "
        "loses events and says how many.",
    )
    p.add_argument(
        "--range",
        type=a.address_range,
        action="append",
        metavar="START:END",
        help="addresses (end exclusive) or START+SIZE; repeatable",
    )
    p.add_argument("--space", action="append", metavar="ID", help="address space; repeatable")
    p.add_argument("--region", action="append", metavar="GLOB", help="region id glob; repeatable")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--read", action="store_true", help="reads only")
    way.add_argument("--write", action="store_true", help="writes only")
    p.add_argument(
        "--kind",
        action="append",
        choices=["ram", "rom", "romd", "mmio", "unassigned"],
        help="kind of region that served the access; repeatable (default: every kind)",
    )
    p.add_argument(
        "--initiator",
        action="append",
        metavar="GLOB",
        help="client, client:ID, or a device name; repeatable",
    )
    outcome = p.add_mutually_exclusive_group()
    outcome.add_argument("--faults", action="store_true", help="faults only")
    outcome.add_argument("--ok", action="store_true", help="successful accesses only")
    p.add_argument(
        "--sample",
        type=float,
        default=1.0,
        metavar="RATE",
        help="keep this fraction of the matching accesses, in (0, 1] (default: %(default)g)",
    )
    p.add_argument(
        "--max-data",
        type=int,
        default=0,
        metavar="N",
        help="bytes of data kept per access (default: 0, the server's default of 64)",
    )
    p.add_argument(
        "--queue",
        type=int,
        default=0,
        metavar="N",
        help="events the server queues for this subscriber before it loses them (default: "
        "0, the server's serve --trace-queue)",
    )
    p.add_argument(
        "--format",
        choices=["text", "jsonl", "chrome"],
        default="text",
        help="text for people, jsonl for machines (and replay), chrome for Perfetto "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        help="write here instead of standard output; FILE is replaced once the bus sends the "
        "first event (an earlier recording survives a trace that cannot start)",
    )
    p.add_argument(
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="stop after N accesses (default: 0, until stopped)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0,
        metavar="SECONDS",
        help="stop after this long (default: 0, until stopped)",
    )
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser(
        "replay",
        help="re-issue recorded client accesses and report differences",
        description="Re-issue, in order, the client accesses of a recording made with "
        "`mmiobus trace --format jsonl` (or chrome) and report every access whose data or "
        "result differs. Exit status 4 when something differs.",
    )
    p.add_argument("file", metavar="FILE", help="a recording (JSON Lines or Chrome format)")
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_replay)


# -- trace -------------------------------------------------------------------------------------


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    """The trace filters the options ask for, checked before anything connects."""
    from mmiobus.client.tracing import trace_request

    filters = {
        "ranges": args.range or [],
        "address_spaces": args.space or [],
        "regions": args.region or [],
        "direction": "read" if args.read else "write" if args.write else "any",
        "kinds": args.kind or [],
        "initiators": args.initiator or [],
        "results": "fault" if args.faults else "ok" if args.ok else "any",
        "sample_rate": args.sample,
        "max_data_bytes": args.max_data,
        "queue_capacity": args.queue,
    }
    try:
        trace_request(**filters)
    except ValueError as e:
        message = str(e)
        for name, option in _OPTIONS.items():
            message = message.replace(name, option)
        raise CommandError(message) from None
    return filters


def cmd_trace(args: argparse.Namespace) -> int:
    """``mmiobus trace``: print or record the accesses that pass the filters."""
    import asyncio

    from mmiobus.client import AsyncBus
    from mmiobus.client.tracing import ChromeTrace, jsonl, text

    filters = _filters(args)
    server = a.resolve_server(args.server)
    credentials = a.credentials(args)
    # --out FILE: written beside FILE, which it replaces once the bus has sent an event (the
    # subscription works) or the trace ended without an error: a recording already at FILE
    # survives a bus that cannot be reached or refuses the filters.
    target = OutputFile(args.out) if args.out else None
    out = target.file if target is not None else sys.stdout
    color = target is None and sys.stdout.isatty()
    chrome = ChromeTrace(out) if args.format == "chrome" else None
    flush = args.format != "chrome" or target is None

    async def record() -> None:
        count = 0
        async with AsyncBus(server, timeout=args.timeout, credentials=credentials) as bus:
            async with asyncio.timeout(args.duration or None):
                async for event in bus.trace(**filters):
                    if target is not None:
                        target.keep()
                    if chrome is not None:
                        chrome.write(event)
                    elif args.format == "jsonl":
                        out.write(jsonl(event))
                    else:
                        out.write(text(event, color))
                    if flush:
                        out.flush()
                    if not event.lost:
                        count += 1
                        if count == args.count:
                            return

    ended = False
    try:
        run_until_interrupted(record())  # Ctrl-C or SIGTERM ends the recording cleanly
        ended = True
    except TimeoutError:  # --duration elapsed
        ended = True
    finally:
        if chrome is not None:
            chrome.close()
        if target is not None:
            target.close(keep=ended)
    return 0


# -- replay ------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    """``mmiobus replay``: re-issue a recording's client accesses; exit 4 on differences."""
    from mmiobus.client import MemTxAttrs
    from mmiobus.client.tracing import read_recording
    from mmiobus.wire import result_names

    text = read_text(args.file)
    try:
        events = [ev for ev in read_recording(text) if ev["initiator"] == "client"]
    except KeyError as e:
        reason = f"an event has no {e.args[0]!r}"
    except ValueError as e:
        reason = str(e)
    except (TypeError, AttributeError):
        reason = "its records are not trace events"
    else:
        reason = ""
    if reason:
        raise CommandError(f"{args.file} is not a recording of `mmiobus trace`: {reason}")
    if not events:
        raise CommandError(
            f"{args.file} holds no client access to replay: record some with `mmiobus trace "
            "--format jsonl --out FILE` while a client accesses the bus"
        )
    for ev in events:
        if ev["dir"] == "write" and ev["data_truncated"]:
            raise CommandError(
                f"seq {ev['seq']}: the recording holds only part of a {ev['size']}-byte write; "
                f"record again with `mmiobus trace --max-data {ev['size']}` or more"
            )
    differences = 0
    with a.connect(args) as bus, bus.stream() as s:
        futures = []
        for ev in events:
            attrs = MemTxAttrs(requester_id=ev["requester_id"]) if ev["requester_id"] else None
            if ev["dir"] == "write":
                f = s.write(
                    ev["addr"],
                    bytes.fromhex(ev["data"]),
                    address_space=ev["address_space"],
                    attrs=attrs,
                    check=False,
                )
            else:
                f = s.read(
                    ev["addr"],
                    ev["size"],
                    address_space=ev["address_space"],
                    attrs=attrs,
                    check=False,
                )
            futures.append((ev, f))
        for ev, f in futures:
            got = f.result()
            result = int(got.result if ev["dir"] == "read" else got)
            where = f"seq {ev['seq']}: {ev['dir']} of {ev['size']} bytes at {ev['addr']:#x}"
            if result != ev["result"]:
                differences += 1
                print(f"{where}: result {result_names(result)} (recorded {ev['result_name']})")
            if ev["dir"] == "read":
                recorded = bytes.fromhex(ev["data"])
                data = got.data[: len(recorded)]
                if data != recorded:
                    differences += 1
                    print(f"{where}: data {data.hex()} (recorded {recorded.hex()})")
    print(
        f"replayed {len(events)} access{'es' if len(events) != 1 else ''}: "
        f"{differences or 'no'} difference{'s' if differences != 1 else ''}"
    )
    return EXIT_DIFFERENT if differences else 0
