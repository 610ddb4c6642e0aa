"""``mmiobus serve``: run the bus server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

from . import args as a
from .errors import CommandError


def register(sub: Any) -> None:
    """Add ``serve`` to the ``mmiobus`` subcommands."""
    from mmiobus.server.config import Limits

    d = Limits()
    p = sub.add_parser(
        "serve",
        help="run the bus server",
        description="Serve a machine (the built-in default one unless --config is given) over "
        "gRPC until SIGINT or SIGTERM; then finish the calls in flight and exit 0.",
    )
    p.add_argument("--config", "-c", metavar="FILE", help="machine description (YAML)")
    p.add_argument(
        "--listen",
        "-l",
        action="append",
        type=a.listen_address,
        metavar="ADDR",
        help="HOST:PORT, [IPV6]:PORT or unix:PATH; repeat to listen on several (default: "
        "127.0.0.1:7170; a missing port is 7170; port 0 picks a free one)",
    )
    a.add_log_options(p)
    p.add_argument("--max-access-bytes", type=a.number, default=d.max_access_bytes, metavar="N")
    p.add_argument("--max-batch-bytes", type=a.number, default=d.max_batch_bytes, metavar="N")
    p.add_argument("--max-batch-accesses", type=int, default=d.max_batch_accesses, metavar="N")
    p.add_argument("--max-topology-ops", type=int, default=d.max_topology_ops, metavar="N")
    p.add_argument("--max-message-bytes", type=a.number, default=d.max_message_bytes, metavar="N")
    p.add_argument(
        "--grace",
        type=float,
        default=d.grace_seconds,
        metavar="SECONDS",
        help="how long shutdown waits for calls in flight",
    )
    p.add_argument(
        "--device-deadline",
        type=float,
        default=1000.0,
        metavar="MS",
        help="how long a forwarded access waits for its device (a region's `deadline` wins)",
    )
    p.add_argument(
        "--device-token",
        action="append",
        metavar="TOKEN",
        help="devices must present this token to attach (repeat to accept several)",
    )
    p.add_argument(
        "--trace-queue",
        type=int,
        default=10_000,
        metavar="N",
        help="events queued per trace subscriber before it starts losing them (default)",
    )
    p.add_argument(
        "--trace-max-data",
        type=a.number,
        default=4096,
        metavar="N",
        help="the most data bytes a trace subscriber may ask to keep per event",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """``mmiobus serve``: configure logging, load the machine and serve it until stopped."""
    from mmiobus.machine import Machine
    from mmiobus.server import app, logs
    from mmiobus.server.config import Limits, ServerConfig, TraceSettings

    logs.configure(args.log_format, args.log_level)
    if args.config:
        machine = Machine.from_file(args.config, require_address_space=True)
    else:
        machine = Machine.default()
    try:
        config = ServerConfig(
            limits=Limits(
                max_access_bytes=args.max_access_bytes,
                max_batch_bytes=args.max_batch_bytes,
                max_batch_accesses=args.max_batch_accesses,
                max_topology_ops=args.max_topology_ops,
                max_message_bytes=args.max_message_bytes,
                grace_seconds=args.grace,
            ),
            trace=TraceSettings(
                queue_capacity=args.trace_queue, max_data_limit=args.trace_max_data
            ),
            device_deadline_ms=args.device_deadline,
            device_tokens=frozenset(args.device_token or []),
        )
    except ValueError as e:
        raise CommandError(str(e)) from None
    try:
        return app.serve_forever(machine, config, args.listen or [], _ready)
    except app.ListenError as e:
        raise CommandError(str(e)) from None


def _ready(addresses: list[str]) -> None:
    for address in addresses:
        print(f"mmiobus: listening on {address}", flush=True)
