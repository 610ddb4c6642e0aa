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
    p.add_argument(
        "--metrics",
        action="append",
        type=_metrics_address,
        metavar="ADDR",
        help="serve Prometheus/OpenMetrics metrics at http://ADDR/metrics: HOST:PORT (a missing "
        "port is 9170, 0 picks a free one) or unix:PATH; repeatable (default: none, and "
        "nothing is counted)",
    )
    limits = (
        ("--max-access-bytes", a.number, d.max_access_bytes, "the largest read or write of one access"),
        ("--max-batch-bytes", a.number, d.max_batch_bytes, "bytes read and written by one batch or stream message"),
        ("--max-batch-accesses", int, d.max_batch_accesses, "accesses in one batch or stream message"),
        ("--max-topology-ops", int, d.max_topology_ops, "operations in one topology transaction"),
        ("--max-message-bytes", a.number, d.max_message_bytes, "the largest gRPC message"),
        ("--max-ram-bytes", a.number, d.max_ram_bytes, "RAM, ROM and ROM-device bytes clients may create while the server runs"),
        ("--max-device-queue", a.number, d.max_device_queue_bytes, "bytes waiting to go to one device before its session ends (it stopped reading)"),
        ("--max-regions", a.number, d.max_regions, "the most regions and address spaces the machine may have: past it, clients and devices create no more"),
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
        help="devices must present this token to attach (repeat to accept several); other "
        "local users can read it (`ps`): prefer an --auth file",
    )
    add_security_options(p)
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
    cpu.add_argument(
        "--no-count",
        action="store_true",
        help="do not count the CPU's instructions (faster; no count in its summary)",
    )
    cpu.add_argument(
        "--no-pin",
        action="store_true",
        help="leave the server's threads to the scheduler while a CPU runs (default: while a CPU "
        "runs in the server or is attached from `cpu run`, they share the loop's core, which "
        "makes every access the CPU hands over cheaper)",
    )
    cpu.add_argument("--poll-max-us", type=a.poll_us, metavar="US", help=a.POLL_HELP)
    p.set_defaults(func=cmd_serve)


def add_security_options(p: argparse.ArgumentParser) -> None:
    """``--auth``, TLS, ``--insecure`` and ``--socket-mode``."""
    g = p.add_argument_group(
        "security",
        "Who may reach the bus and what they may do. Without --auth, every caller may do "
        "everything, which is for loopback and unix sockets: listening elsewhere needs --auth "
        "or --tls-client-ca, or --insecure.",
    )
    g.add_argument(
        "--auth",
        metavar="FILE",
        help="identities (tokens, client certificates) and their roles, in YAML: read, write, "
        "trace, topology, device, admin (README, Security)",
    )
    g.add_argument(
        "--token-file",
        metavar="FILE",
        help="require the token in FILE of every caller, who may then do everything (one "
        "shared secret; for roles, --auth)",
    )
    g.add_argument(
        "--tls-cert", metavar="FILE", help="the bus's certificate chain (PEM): TLS on TCP"
    )
    g.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    g.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="mutual TLS: every TLS caller presents a certificate this CA (PEM) signed (only "
        "at --mtls-listen ports, if any); --auth names identities by certificate (without "
        "--auth, each such caller may do everything)",
    )
    g.add_argument(
        "--mtls-listen",
        action="append",
        type=_mtls_address,
        metavar="ADDR",
        help="HOST:PORT to listen on with mutual TLS (--tls-client-ca), repeatable; the "
        "--listen TCP ports then take TLS without client certificates, for callers with "
        "tokens: mutual TLS optional (gRPC cannot ask a caller for a certificate without "
        "requiring one, so the choice is the port)",
    )
    g.add_argument(
        "--insecure",
        action="store_true",
        help="listen beyond loopback without authentication (and say so in the log)",
    )
    g.add_argument(
        "--socket-mode",
        type=_octal,
        default=0o600,
        metavar="MODE",
        help="permissions of unix sockets, in octal (default: 0600: their owner only)",
    )


def _mtls_address(text: str) -> str:
    address = a.listen_address(text)
    if address.startswith("unix:"):
        raise argparse.ArgumentTypeError(
            f"{text}: mutual TLS is for TCP (unix sockets are plain text, guarded by their mode)"
        )
    return address


def _octal(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an octal mode (e.g. 0600 or 0660)"
        ) from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"{text}: a mode is between 0 and 0777")
    return value


def _security(args: argparse.Namespace) -> Any:
    """The ``Security`` the options ask for; one error line when a file is wrong."""
    from mmiobus.credentials import CredentialsError, read_pem
    from mmiobus.server.auth_file import AuthFileError, load_policy, shared_token_policy
    from mmiobus.server.auth_listen import check_tls_files
    from mmiobus.server.config import Security, ServerTls

    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together: the certificate and its key")
    if args.auth and args.token_file:
        raise UsageError("give --auth or --token-file (an --auth identity can have a token_file)")
    if args.tls_client_ca and not args.tls_cert:
        raise UsageError("--tls-client-ca needs the bus's own --tls-cert and --tls-key")
    if args.mtls_listen and not args.tls_client_ca:
        raise UsageError(
            "--mtls-listen needs --tls-client-ca: the CA whose certificates callers present there"
        )
    try:
        policy = load_policy(args.auth) if args.auth else None
        if args.token_file:
            policy = shared_token_policy(args.token_file)
        tls = None
        if args.tls_cert:
            check_tls_files(args.tls_cert, args.tls_key, args.tls_client_ca)
            tls = ServerTls(
                read_pem(args.tls_cert, "--tls-cert"),
                read_pem(args.tls_key, "--tls-key"),
                read_pem(args.tls_client_ca, "--tls-client-ca") if args.tls_client_ca else None,
            )
    except (AuthFileError, CredentialsError, ValueError) as e:
        raise CommandError(str(e)) from None
    return Security(policy, tls, args.insecure, args.socket_mode, tuple(args.mtls_listen or ()))


def cmd_serve(args: argparse.Namespace) -> int:
    """``mmiobus serve``: configure logging, load the machine and serve it until stopped."""
    from mmiobus.machine import Machine
    from mmiobus.server import app, logs
    from mmiobus.server.config import Limits, ServerConfig, TraceSettings

    logs.configure(args.log_format, args.log_level)
    security = _security(args)
    if args.device_token:
        import structlog

        structlog.get_logger("mmiobus.server").warning(
            "--device-token is visible to other local users (ps); prefer --auth FILE"
        )
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
                max_ram_bytes=args.max_ram_bytes,
                max_device_queue_bytes=args.max_device_queue,
                max_regions=args.max_regions,
            ),
            trace=TraceSettings(
                queue_capacity=args.trace_queue, max_data_limit=args.trace_max_data
            ),
            device_deadline_ms=args.device_deadline,
            device_tokens=frozenset(args.device_token or []),
            security=security,
            metrics=tuple(args.metrics or ()),
            pin_cpus=not args.no_pin,
            cpu_poll_max_ns=a.poll_max_ns(args),
        )
    except ValueError as e:
        message = str(e)
        for name in ("max_access_bytes", "max_batch_bytes", "max_batch_accesses",
                     "max_topology_ops", "max_message_bytes", "max_regions"):  # fmt: skip
            message = message.replace(name, "--" + name.replace("_", "-"))
        raise CommandError(message) from None
    cpus = {}
    if args.cpu is not None:
        from mmiobus.server.cpus import CpuRun

        if args.cpu not in machine.cpus:
            known = ", ".join(machine.cpus) or "none; try --machine riscv-virt"
            raise CommandError(f"--cpu: the machine has no CPU named {args.cpu!r} (its CPUs: "
                               f"{known})")  # fmt: skip
        cpus[args.cpu] = CpuRun(
            args.firmware, args.payload, args.until, count_instructions=not args.no_count
        )
    elif args.firmware or args.payload or args.until is not None or args.no_count:
        raise UsageError("--firmware, --payload and --until go with --cpu NAME")
    from mmiobus.server.auth_listen import ExposureError

    try:
        return app.serve_forever(machine, config, args.listen or [], _ready, cpus)
    except ExposureError as e:
        raise CommandError(str(e)) from None
    except app.ListenError as e:
        tried = [*(args.listen or [app.DEFAULT_LISTEN]), *(args.mtls_listen or [])]
        raise CommandError(_why_not(tried, str(e))) from None


def _why_not(addresses: list[str], message: str) -> str:
    """The reason the server could not listen, found by trying each address as it did: gRPC
    only says that binding failed."""
    import errno
    import socket

    from mmiobus.endpoints import bind_error

    for address in addresses:
        if address.startswith("unix:"):
            folder = Path(address[5:]).parent
            if not folder.is_dir():
                return f"cannot listen on {address}: there is no folder {folder}"
            if not os.access(folder, os.W_OK):
                return f"cannot listen on {address}: {folder} is not writable"
            continue
        host = address.rpartition(":")[0].strip("[]")
        e = bind_error(address)
        if isinstance(e, socket.gaierror):
            return f"cannot listen on {address}: there is no host called {host!r}"
        if e is None:
            continue
        if e.errno == errno.EADDRINUSE:
            return (
                f"cannot listen on {address}: something already listens there (another "
                "`mmiobus serve`?); stop it, or choose another port with --listen"
            )
        if e.errno == errno.EADDRNOTAVAIL:
            return f"cannot listen on {address}: {host} is not an address of this host"
        return f"cannot listen on {address}: {e.strerror}"
    return message


def _metrics_address(text: str) -> str:
    from mmiobus.server.metrics import metrics_address

    try:
        return metrics_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _ready(addresses: list[str]) -> None:
    for address in addresses:
        print(f"mmiobus: listening on {address}", flush=True)
