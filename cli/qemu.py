"""``mmiobus device qemu``: QEMU's device models serving bus regions (over qtest)."""

from __future__ import annotations

import argparse
from typing import Any

from . import args as a
from .console import run_until_interrupted
from .errors import CommandError, UsageError


def register_device(group: Any) -> None:
    """Add ``qemu`` to the ``device`` subcommands."""
    p = group.add_parser(
        "qemu",
        help="serve regions of the bus with QEMU's device models (over qtest)",
        description="Run QEMU (stopped: -S, driven over qtest) and serve bus regions from "
        "windows of its machine's address space: --claim a region of the description (served "
        "from its own address in QEMU, or from =ADDR), or --at register a new one. The "
        "interrupt controller's inputs (--irq-controller) become bus lines (--irq N=LINE). "
        "QEMU lives as long as the device: stopping one stops the other. QEMU options go "
        "after `--`. QEMU's virtual clock does not run: device behaviour driven by QEMU timers "
        "does not happen (see docs/peers.md).",
    )
    a.add_server_option(p)
    p.add_argument("--arch", default="riscv64", help="QEMU's target (default: %(default)s; "
                   "riscv64, aarch64, arm, x86_64, ...)")  # fmt: skip
    p.add_argument("--qemu", metavar="PROGRAM", help="the QEMU program (default: "
                   "qemu-system-ARCH)")  # fmt: skip
    p.add_argument("--machine", "-M", help="QEMU's -machine value, e.g. virt (default: QEMU's)")
    p.add_argument(
        "--claim",
        action="append",
        metavar="REGION[=ADDR]",
        help="serve this region of the bus from QEMU address ADDR (default: the region's own "
        "bus address); repeatable",
    )
    p.add_argument(
        "--at",
        action="append",
        metavar="ADDR:SIZE=QADDR",
        help="register a new region of SIZE bytes at bus address ADDR, served from QEMU "
        "address QADDR; repeatable",
    )
    p.add_argument(
        "--irq-controller",
        metavar="PATH|TYPE",
        help="intercept this device's interrupt inputs: a QOM path (/machine/...) or a QOM type "
        "the machine has one of (arm_gic, riscv.sifive.plic)",
    )
    p.add_argument(
        "--irq",
        action="append",
        metavar="N=LINE",
        help="input N of the interrupt controller drives bus line NAME.LINE; repeatable",
    )
    p.add_argument(
        "--serial",
        action="append",
        metavar="WHERE",
        help="where QEMU's next serial port goes: stdout, file:PATH, tcp:HOST:PORT or "
        "unix:PATH (QEMU listens; what is typed there comes back), none (default: stdout for "
        "the first)",
    )
    p.add_argument("--name", help="device name (default: the first claimed region, or qemu)")
    a.add_session_options(p)
    p.add_argument("qemu_args", nargs="*", metavar="-- QEMU-OPTION", help="more QEMU options")
    a.add_log_options(p)
    p.set_defaults(func=cmd_device_qemu)


def _irqs(items: list[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in items:
        n, sep, line = item.partition("=")
        if not sep or not n.strip().isdigit() or not line.strip():
            raise UsageError(f"--irq {item!r}: write N=LINE, e.g. --irq 1=irq")
        out[int(n)] = line.strip()
    return out


def cmd_device_qemu(args: argparse.Namespace) -> int:
    """Run QEMU and serve the windows until stopped."""
    import grpc
    from mmiobus.client.errors import from_rpc_error
    from mmiobus.devices.runner import Refused, RegionRefused
    from mmiobus.peers.windows import WindowError, parse_claim, parse_registration
    from mmiobus.qemu.binaries import QemuMissing, find_qemu, program_for
    from mmiobus.qemu.device import QemuDeviceOptions, QemuExited, serve
    from mmiobus.qemu.launch import QemuConfig, QemuStartError, SerialSpecError
    from mmiobus.qemu.machine_view import IrqControllerError
    from mmiobus.qemu.qtest import QtestError
    from mmiobus.server import logs

    from .device_run import _refused

    logs.configure(args.log_format, args.log_level)
    args.claim, args.at = args.claim or [], args.at or []
    if not args.claim and not args.at:
        raise UsageError(
            "say which regions to serve: --claim REGION[=ADDR] or --at ADDR:SIZE=QADDR"
        )
    try:
        windows = [parse_claim(c) for c in args.claim] + [parse_registration(r) for r in args.at]
        program = find_qemu(args.qemu or program_for(args.arch))
    except (WindowError, ValueError, QemuMissing) as e:
        raise CommandError(str(e)) from None
    name = args.name or (args.claim[0].partition("=")[0] if args.claim else "qemu")
    server = a.resolve_server(args.server)
    config = QemuConfig(program, args.machine, args.serial or ["stdout"], list(args.qemu_args))

    def ready(runner: Any, regions: list[Any]) -> None:
        ids = ", ".join(r.id for r in regions)
        print(f"mmiobus device {runner.name}: serving {ids} on {runner.server} with "
              f"{args.machine or 'QEMU'}'s devices", flush=True)  # fmt: skip

    opts = QemuDeviceOptions(
        server,
        name,
        windows,
        config,
        irq_controller=args.irq_controller,
        irqs=_irqs(args.irq or []),
        token=args.token or "",
        credentials=a.credentials(args),
        reconnect=not args.no_reconnect,
        on_ready=ready,
    )
    try:
        run_until_interrupted(serve(opts))
    except (Refused, RegionRefused) as e:
        raise _refused(name, e.code, str(e)) from None
    except grpc.RpcError as e:
        raise CommandError(str(from_rpc_error(e, server))) from None
    except QemuStartError as e:
        raise CommandError(f"QEMU could not start: {e}") from None
    except QemuExited as e:
        raise CommandError(f"QEMU went away: {e}") from None
    except (WindowError, IrqControllerError, SerialSpecError, ValueError) as e:
        raise CommandError(str(e)) from None
    except QtestError as e:
        raise CommandError(f"QEMU refused: {e}") from None
    return 0
