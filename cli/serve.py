"""``mmiobus serve``: run the bus server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from . import args as a
from .errors import CommandError, UsageError


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
    which = p.add_mutually_exclusive_group()
    which.add_argument("--config", "-c", metavar="FILE", help="machine description (YAML)")
    which.add_argument(
        "--machine",
        "-m",
        metavar="NAME",
        help="a built-in machine: default, riscv-virt, arm-virt (`mmiobus machines` lists them)",
    )
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
    limits = (
        ("--max-access-bytes", a.number, d.max_access_bytes, "the largest read or write of one access"),
        ("--max-batch-bytes", a.number, d.max_batch_bytes, "bytes read and written by one batch or stream message"),
        ("--max-batch-accesses", int, d.max_batch_accesses, "accesses in one batch or stream message"),
        ("--max-topology-ops", int, d.max_topology_ops, "operations in one topology transaction"),
        ("--max-message-bytes", a.number, d.max_message_bytes, "the largest gRPC message"),
    )  # fmt: skip
    for option, kind, default, what in limits:
        p.add_argument(
            option,
            type=kind,
            default=default,
            metavar="N",
            help=f"{what}; numbers take units, e.g. 4M (default: %(default)s)",
        )
    p.add_argument(
        "--grace",
        type=a.seconds_or_zero,
        default=d.grace_seconds,
        metavar="SECONDS",
        help="how long shutdown waits for calls in flight (default: %(default)g)",
    )
    p.add_argument(
        "--device-deadline",
        type=float,
        default=1000.0,
        metavar="MS",
        help="how long a forwarded access waits for its device; a region's `deadline` wins "
        "(default: %(default)g)",
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
        help="events queued per trace subscriber before it starts losing them (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--trace-max-data",
        type=a.number,
        default=4096,
        metavar="N",
        help="the most data bytes a trace subscriber may ask to keep per event (default: "
        "%(default)s)",
    )
    cpu = p.add_argument_group(
        "a CPU in the server",
        "Run a CPU of the machine inside the server (its engine beside the memory: devices in "
        "the server are a function call away, device processes one hop). A CPU whose "
        "description says `run: server` starts without these.",
    )
    cpu.add_argument("--cpu", metavar="NAME", help="run this CPU of the machine (e.g. cpu0)")
    cpu.add_argument("--firmware", metavar="FILE", help="its firmware (default: the machine's)")
    cpu.add_argument("--payload", metavar="FILE", help="an image loaded where the firmware jumps")
    cpu.add_argument(
        "--until",
        type=a.address,
        metavar="PC",
        help="stop the CPU when it reaches this address (the server goes on)",
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
        machine = Machine.builtin(args.machine or "default")
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
        message = str(e)
        for name in ("max_access_bytes", "max_batch_bytes", "max_batch_accesses",
                     "max_topology_ops", "max_message_bytes"):  # fmt: skip
            message = message.replace(name, "--" + name.replace("_", "-"))
        raise CommandError(message) from None
    cpus = {}
    if args.cpu is not None:
        from mmiobus.server.cpus import CpuRun

        if args.cpu not in machine.cpus:
            known = ", ".join(machine.cpus) or "none; try --machine riscv-virt"
            raise CommandError(f"--cpu: the machine has no CPU named {args.cpu!r} (its CPUs: "
                               f"{known})")  # fmt: skip
        cpus[args.cpu] = CpuRun(args.firmware, args.payload, args.until)
    elif args.firmware or args.payload or args.until is not None:
        raise UsageError("--firmware, --payload and --until go with --cpu NAME")
    try:
        return app.serve_forever(machine, config, args.listen or [], _ready, cpus)
    except app.ListenError as e:
        raise CommandError(_why_not(args.listen or [app.DEFAULT_LISTEN], str(e))) from None


def _why_not(addresses: list[str], message: str) -> str:
    """The reason the server could not listen, found by trying each address as it did: gRPC
    only says that binding failed."""
    import errno
    import socket

    for address in addresses:
        if address.startswith("unix:"):
            folder = Path(address[5:]).parent
            if not folder.is_dir():
                return f"cannot listen on {address}: there is no folder {folder}"
            if not os.access(folder, os.W_OK):
                return f"cannot listen on {address}: {folder} is not writable"
            continue
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror:
            return f"cannot listen on {address}: there is no host called {host!r}"
        family, kind, proto, _name, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    return (
                        f"cannot listen on {address}: something already listens there (another "
                        "`mmiobus serve`?); stop it, or choose another port with --listen"
                    )
                if e.errno == errno.EADDRNOTAVAIL:
                    return f"cannot listen on {address}: {host} is not an address of this host"
                return f"cannot listen on {address}: {e.strerror}"
    return message


def _ready(addresses: list[str]) -> None:
    for address in addresses:
        print(f"mmiobus: listening on {address}", flush=True)
