"""``mmiobus pci-proxy``: a PCI function of a QEMU PC guest whose BARs are windows onto the
bus (QEMU 7.2's multi-process proxy device); the guest's BAR accesses are the bus accesses
of this command's device session."""

from __future__ import annotations

import argparse
from typing import Any

from . import args as a
from .console import run_until_interrupted
from .errors import CommandError, UsageError

DEFAULT_QEMU = "qemu-system-x86_64"


def register(sub: Any) -> None:
    """Add ``pci-proxy``."""
    p = sub.add_parser(
        "pci-proxy",
        help="a PCI function of a QEMU PC guest whose BARs are windows onto the bus",
        description="Start QEMU (the command after `--`, default program qemu-system-x86_64) "
        "with an x-pci-proxy-dev whose configuration space this command serves (vendor, "
        "device, class, BARs from --description and the options) and whose BAR accesses it "
        "forwards to the bus, as the device session NAME (traces show NAME as the initiator). "
        "Runs until QEMU exits. Limits: PCI on x86_64 only; no INTx without KVM; the guest's "
        "RAM stays in QEMU; QEMU's protocol is private (see docs/peers.md).",
    )
    a.add_server_option(p)
    p.add_argument("--description", metavar="FILE", help="YAML: vendor, device, class, "
                   "revision, subsystem_vendor, subsystem, bars: [{index, bus, size, io}]")  # fmt: skip
    p.add_argument("--vendor", type=a.number, help="vendor id (default: 0x1234)")
    p.add_argument("--device-id", type=a.number, metavar="ID", help="device id (default: 0x5001)")
    p.add_argument("--class", dest="class_code", type=a.number, metavar="CODE",
                   help="24-bit class code: class, subclass, prog-if (default: 0xff0000)")  # fmt: skip
    p.add_argument("--revision", type=a.number, help="revision id (default: 0)")
    p.add_argument("--subsystem-vendor", type=a.number, metavar="ID",
                   help="subsystem vendor id (default: 0)")  # fmt: skip
    p.add_argument("--subsystem", type=a.number, metavar="ID", help="subsystem id (default: 0)")
    p.add_argument(
        "--bar",
        action="append",
        metavar="N=ADDR:SIZE[:io]",
        help="BAR N forwards SIZE bytes to bus address ADDR (memory, or I/O ports with :io); "
        "repeatable",
    )
    p.add_argument("--pci-addr", metavar="SLOT[.FN]", help="the function's slot (QEMU's addr=)")
    p.add_argument("--name", default="pci-proxy", help="the device session's name (default: "
                   "%(default)s)")  # fmt: skip
    a.add_session_options(p, "fail at once when the bus cannot be reached")
    p.add_argument("qemu", nargs="*", metavar="-- [QEMU] OPTION",
                   help="QEMU's command line (the program may be left out)")  # fmt: skip
    a.add_log_options(p)
    p.set_defaults(func=cmd_pci_proxy)


def _bar(item: str) -> dict[str, Any]:
    n, sep, rest = item.partition("=")
    parts = rest.split(":")
    if (
        not sep
        or not n.strip().isdigit()
        or len(parts) not in (2, 3)
        or parts[2:] not in ([], ["io"])
    ):
        raise UsageError(f"--bar {item!r}: write N=ADDR:SIZE or N=ADDR:SIZE:io")
    return {"index": int(n), "bus": parts[0], "size": parts[1], "io": parts[2:] == ["io"]}


def function_config(args: argparse.Namespace) -> Any:
    """The configuration space the description and options give (options win)."""
    from mmiobus.machine.yamlio import load_yaml
    from mmiobus.qemu.pci_config import Bar, ConfigSpace, Identity, PciConfigError
    from mmiobus.units import parse_size

    from .console import read_text

    desc: dict[str, Any] = {}
    if args.description:
        loaded = load_yaml(read_text(args.description), args.description)[0]
        if not isinstance(loaded, dict):
            raise CommandError(f"{args.description}: expected a mapping of vendor, device, ...")
        desc = loaded
    known = {"vendor", "device", "class", "revision", "subsystem_vendor", "subsystem", "bars"}
    if unknown := sorted(set(desc) - known):
        raise CommandError(f"{args.description}: unknown field {unknown[0]!r} (fields: "
                           f"{', '.join(sorted(known))})")  # fmt: skip

    def num(value: Any, what: str) -> int:
        try:
            return value if isinstance(value, int) else parse_size(str(value))
        except ValueError:
            raise CommandError(f"{what}: {value!r} is not a number") from None

    fields = {"vendor": "vendor", "device": "device", "class": "class_code",
              "revision": "revision", "subsystem_vendor": "subsystem_vendor",
              "subsystem": "subsystem"}  # fmt: skip
    ident = {attr: num(desc[key], key) for key, attr in fields.items() if key in desc}
    for attr, value in (("vendor", args.vendor), ("device", args.device_id),
                        ("class_code", args.class_code), ("revision", args.revision),
                        ("subsystem_vendor", args.subsystem_vendor),
                        ("subsystem", args.subsystem)):  # fmt: skip
        if value is not None:
            ident[attr] = value
    bars = {int(num(b.get("index"), "bars[].index")): b for b in desc.get("bars") or []}
    bars.update({b["index"]: b for b in map(_bar, args.bar or [])})
    if not bars:
        raise UsageError("give the function a BAR: --bar 0=ADDR:SIZE (or bars: in --description)")
    try:
        return ConfigSpace(
            Identity(**ident),
            [Bar(i, num(b.get("bus"), f"BAR {i} bus"), num(b.get("size"), f"BAR {i} size"),
                 bool(b.get("io", False))) for i, b in sorted(bars.items())],
        )  # fmt: skip
    except PciConfigError as e:
        raise CommandError(str(e)) from None


def cmd_pci_proxy(args: argparse.Namespace) -> int:
    """Serve the function until QEMU exits."""
    import grpc
    from mmiobus.client.errors import from_rpc_error
    from mmiobus.devices.runner import Refused, RegionRefused
    from mmiobus.qemu.binaries import QemuMissing, find_qemu
    from mmiobus.qemu.pci_proxy import GuestExited, ProxyOptions, serve
    from mmiobus.server import logs

    from .device_run import _refused

    logs.configure(args.log_format, args.log_level)
    config = function_config(args)
    argv = list(args.qemu)
    if not argv or argv[0].startswith("-"):
        argv.insert(0, DEFAULT_QEMU)
    try:
        argv[0] = find_qemu(argv[0])
    except QemuMissing as e:
        raise CommandError(str(e)) from None
    server = a.resolve_server(args.server)

    def ready(runner: Any, regions: list[Any]) -> None:
        bars = ", ".join(f"BAR{b.index}->{b.bus_addr:#x}+{b.size:#x}" for b in config.bars)
        print(f"mmiobus pci-proxy {runner.name}: {config.identity.vendor:04x}:"
              f"{config.identity.device:04x} ({bars}) on {runner.server}; starting QEMU",
              flush=True)  # fmt: skip

    opts = ProxyOptions(server, args.name, config, argv, pci_addr=args.pci_addr,
                        token=args.token or "", credentials=a.credentials(args), reconnect=not args.no_reconnect,
                        on_ready=ready)  # fmt: skip

    async def run() -> None:
        await serve(opts)

    try:
        run_until_interrupted(run())
    except (Refused, RegionRefused) as e:
        raise _refused(args.name, e.code, str(e)) from None
    except grpc.RpcError as e:
        raise CommandError(str(from_rpc_error(e, server))) from None
    except GuestExited as e:
        raise CommandError(f"QEMU failed: {e}") from None
    return 0
