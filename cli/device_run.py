"""``mmiobus device run``: serve a region of the bus with a Device class in this process,
reconnecting when the bus goes away, and every way that can fail said in one line."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import typing
from typing import Any

from . import args as a
from . import qemu, rtl
from .console import run_until_interrupted
from .errors import CommandError


def register(sub: Any) -> None:
    """Add ``device run`` to the ``mmiobus`` subcommands."""
    group = sub.add_parser("device", help="run a device model").add_subparsers(
        dest="device_command", metavar="COMMAND", required=True
    )
    p = group.add_parser(
        "run",
        help="serve a region of the bus with a Device class, in this process",
        description="Run MODULE:CLASS (an mmiobus.devices.Device) against a bus: claim a "
        "region of the machine description (--claim) or register one at an address (--at). "
        "MODULE is imported as `python -m` would (the current folder first). Reconnects with "
        "back-off when the bus goes away; a refusal that retrying cannot mend (bad "
        "credentials, a bad request, a name another device keeps) ends it with one line.",
    )
    p.add_argument(
        "target",
        metavar="MODULE:CLASS",
        help="e.g. mmiobus.devices.models.uart16550:Uart16550, or mymodule:Blinker for "
        "mymodule.py in the current folder",
    )
    a.add_server_option(p, help="the bus (default: $MMIOBUS_SERVER or 127.0.0.1:7170)")
    p.add_argument("--name", help="device name (default: the first claimed region, or the class)")
    p.add_argument(
        "--claim",
        action="append",
        metavar="REGION",
        help="serve this region of the machine description (repeatable)",
    )
    p.add_argument("--at", type=a.address, metavar="ADDR", help="register a new region at ADDR")
    p.add_argument(
        "--size",
        type=a.region_size,
        help="size of the registered region, e.g. 0x1000 or 4K (default: the class's)",
    )
    p.add_argument(
        "--address-space",
        "-a",
        metavar="ID",
        help="map --at in this address space's root (default: the bus's first)",
    )
    p.add_argument(
        "--container",
        metavar="REGION",
        help="map --at inside this container instead of an address space's root",
    )
    p.add_argument(
        "--priority",
        type=int,
        default=0,
        help="priority of the registered region in its container (default: %(default)s)",
    )
    p.add_argument("--region-id", metavar="ID", help="id of the registered region (default: NAME)")
    p.add_argument(
        "--deadline",
        type=int,
        metavar="MS",
        help="how long an access to the registered region waits for an answer (default: the "
        "server's --device-deadline)",
    )
    p.add_argument(
        "--arg",
        action="append",
        metavar="KEY=VALUE",
        help="constructor argument (YAML value; repeatable)",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="keep this process's threads on one core (the one it runs on when it attaches): "
        "answers reach a CPU sooner, but the scheduler cannot move the process later",
    )
    a.add_session_options(p)
    a.add_log_options(p)
    p.set_defaults(func=cmd_device_run)
    for peer in (qemu, rtl):  # devices served by another program: QEMU, an HDL simulator
        peer.register_device(group)


# What to do about each refusal, by gRPC status name.
_CHECK_TOKEN = (
    "check the token (--token-file, $MMIOBUS_TOKEN or --token) against the bus's --auth file "
    "or --device-token"
)
_ADVICE = {
    "ALREADY_EXISTS": "stop the other one, or choose another --name",
    "UNAUTHENTICATED": _CHECK_TOKEN,
    "NOT_FOUND": "`mmiobus regions` lists the regions of the bus",
}


def _refused(name: str, code: Any, message: str) -> CommandError:
    advice = _ADVICE.get(getattr(code, "name", ""), "")
    return CommandError(
        f"the bus refused device {name!r}: {message}" + (f"; {advice}" if advice else "")
    )


def cmd_device_run(args: argparse.Namespace) -> int:
    """``mmiobus device run``: serve a region with a Device class until stopped."""
    import grpc
    from mmiobus.affinity import pin_process_here
    from mmiobus.client.errors import from_rpc_error
    from mmiobus.devices import DeviceRunner, Placement
    from mmiobus.devices.loading import load_device_class
    from mmiobus.devices.runner import Refused, RegionRefused
    from mmiobus.server import logs

    logs.configure(args.log_format, args.log_level)
    # As `python -m` does: modules in the current folder import (mymodule:Blinker).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        cls = load_device_class(args.target)
    except ValueError as e:
        raise CommandError(str(e)) from None
    kwargs = device_arguments(cls, args.arg or [])
    try:
        device = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise CommandError(f"{args.target}: {e}") from None
    if not args.claim and args.at is None:
        raise CommandError("say which region to serve: --claim REGION or --at ADDR")
    placement = None
    if args.at is not None:
        if args.size is not None:
            device.size = args.size
        placement = Placement(
            addr=args.at,
            address_space=args.address_space or "",
            container=args.container,
            priority=args.priority,
            region_id=args.region_id,
            deadline_ms=args.deadline or 0,
        )
    name = args.name or (args.claim[0] if args.claim else cls.__name__.lower())

    def ready(runner: DeviceRunner, regions: list[Any]) -> None:
        if args.pin and runner.sessions == 1:  # gRPC's threads exist now; later ones inherit
            pin_process_here()
        ids = ", ".join(r.id for r in regions)
        print(f"mmiobus device {runner.name}: serving {ids} on {runner.server}", flush=True)
        if args.token:
            warn_token_option()

    server = a.resolve_server(args.server)
    credentials = a.credentials(args)
    runner = DeviceRunner(
        device,
        server,
        name=name,
        claims=args.claim,
        placement=placement,
        token=args.token or "",
        reconnect=not args.no_reconnect,
        on_ready=ready,
        credentials=credentials,
    )
    ended: list[bool] = []  # the run ended by itself, not by a signal

    async def serve() -> None:
        await runner.run()
        ended.append(True)

    try:
        run_until_interrupted(serve())
    except (Refused, RegionRefused) as e:
        raise _refused(name, e.code, str(e)) from None
    except grpc.RpcError as e:  # --no-reconnect, and the bus cannot be reached
        raise CommandError(str(from_rpc_error(e, server))) from None
    if ended:  # --no-reconnect, and the bus ended the session
        raise CommandError(
            f"the bus at {server} ended the session of device {runner.name!r} (it stopped or went "
            "away); without --no-reconnect the device attaches again when the bus is back"
        )
    return 0


def warn_token_option() -> None:
    """Say once that --token shows the secret to every local user (said once attached, so that
    a refusal stays one line)."""
    import structlog

    structlog.get_logger("mmiobus.device").warning(
        "--token is visible to other local users (ps); use --token-file FILE or $MMIOBUS_TOKEN"
    )


def device_arguments(cls: type, items: list[str]) -> dict[str, Any]:
    """The constructor arguments ``--arg KEY=VALUE`` give, each VALUE read as YAML 1.2 (so
    ``off`` stays a string), checked against the constructor: an unknown name, a missing
    argument, or a value of the wrong kind for a parameter annotated ``int``, ``float``,
    ``bool`` or ``str`` is one error line naming the ``--arg``."""
    from mmiobus.machine.yamlio import load_yaml

    raw: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--arg {item!r}: use KEY=VALUE")
        raw[key] = value
        kwargs[key] = load_yaml(value, f"--arg {key}")[0] if value else ""
    try:
        params = inspect.signature(cls).parameters
        hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except Exception:  # a constructor we cannot inspect: let it judge its arguments
        return kwargs
    named = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key in kwargs:
        if key not in named and not takes_any:
            takes = ", ".join(named) or "no arguments"
            raise CommandError(
                f"--arg {key}: {cls.__name__} has no argument {key!r} (it takes {takes})"
            )
        if key in named:
            kwargs[key] = _of_kind(hints.get(key), kwargs[key], raw[key], f"--arg {key}")
    missing = [n for n, p in named.items() if p.default is p.empty and n not in kwargs]
    if missing:
        raise CommandError(f"{cls.__name__} needs --arg {missing[0]}=VALUE")
    return kwargs


def _of_kind(kind: Any, value: Any, text: str, where: str) -> Any:
    from mmiobus.units import parse_size

    if kind is bool:
        if not isinstance(value, bool):
            raise CommandError(f"{where}={text}: give true or false")
    elif kind is int:
        if isinstance(value, str):  # sizes as descriptions write them: 4K, 2**12
            try:
                value = parse_size(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int):
            raise CommandError(f"{where}={text}: give an integer (e.g. 100, 0x10, 4K)")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CommandError(f"{where}={text}: give a number")
    elif kind is str and not isinstance(value, str):
        value = text  # YAML read a number or a boolean; the parameter wants the text
    return value
