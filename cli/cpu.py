"""``mmiobus cpu run``: run a CPU of the bus's machine (real firmware on the Unicorn engine) in
this process, attached to the bus like a device."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from . import args as a
from .errors import EXIT_ERROR, EXIT_FAULT, CommandError


def register(sub: Any) -> None:
    """Add the ``cpu`` command group."""
    group = sub.add_parser("cpu", help="run a CPU of the machine (firmware on a CPU engine)")
    commands = group.add_subparsers(dest="cpu_command", metavar="COMMAND", required=True)
    p = commands.add_parser(
        "run",
        help="run a CPU of the bus's machine in this process",
        description="Run CPU NAME of the machine the bus serves (its description's `cpus:`) "
        "on the Unicorn engine: load the firmware (and payload) into the machine's memory, "
        "boot it as the board does, and run until --until, --timeout, the guest powering off, "
        "or Ctrl-C. Its accesses are bus accesses with the CPU as initiator; it serves its "
        "timers and interrupt controller itself. Prints a one-line summary at the end.",
    )
    a.add_server_option(p)
    p.add_argument("--name", default="cpu0", help="which CPU of the machine (default: cpu0)")
    p.add_argument(
        "--arch",
        choices=["riscv64", "aarch64"],
        help="refuse to run unless the CPU is of this architecture",
    )
    p.add_argument(
        "--firmware",
        metavar="FILE",
        help="the firmware image (default: the machine's, if it names one)",
    )
    p.add_argument(
        "--payload",
        metavar="FILE",
        help="an image loaded where the firmware jumps (e.g. U-Boot after OpenSBI)",
    )
    p.add_argument(
        "--until",
        type=a.address,
        metavar="PC",
        help="stop when the CPU reaches this address (before running it)",
    )
    p.add_argument("--timeout", type=a.seconds, metavar="SECONDS", help="stop after this long")
    p.add_argument(
        "--max-instructions",
        type=a.number,
        metavar="N",
        help="stop after about this many instructions",
    )
    p.add_argument(
        "--no-count",
        action="store_true",
        help="do not count instructions (faster; the summary then has no count)",
    )
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="leave this process's threads to the scheduler (default: they share one core while "
        "the CPU runs, which makes every bus access cheaper)",
    )
    p.add_argument("--poll-max-us", type=a.poll_us, metavar="US", help=a.POLL_HELP)
    p.add_argument(
        "--token",
        help="the token itself; other local users can read it (`ps`): prefer --token-file or "
        "$MMIOBUS_TOKEN",
    )
    p.add_argument(
        "--no-reconnect",
        action="store_true",
        help="fail at once when the bus does not answer (default: retry until it does)",
    )
    a.add_log_options(p)
    p.set_defaults(func=cmd_cpu_run)


def cmd_cpu_run(args: argparse.Namespace) -> int:
    """Attach, boot, run; the summary line on standard output."""
    from mmiobus.cpu.frontend import CpuFrontend, FrontendError, Images
    from mmiobus.cpu.layout import LayoutError
    from mmiobus.cpu.remote_bus import BusLost
    from mmiobus.cpu.results import BusAccessError, CpuError, ExitReason
    from mmiobus.server import logs

    logs.configure(args.log_format, args.log_level)
    if args.token:
        from .device_run import warn_token_option

        warn_token_option()
    frontend = CpuFrontend(
        a.resolve_server(args.server),
        args.name,
        images=Images(args.firmware, args.payload),
        token=args.token or "",
        reconnect=not args.no_reconnect,
        count_instructions=not args.no_count,
        arch=args.arch,
        credentials=a.credentials(args),
        pin=not args.no_pin,
        poll_max_ns=a.poll_max_ns(args),
    )
    if args.max_instructions is not None and args.no_count:
        raise CommandError("--max-instructions needs the count: drop --no-count")
    stopped = {"signal": False}

    def stop(*_: object) -> None:
        stopped["signal"] = True
        frontend.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = frontend.run(args.until, args.timeout, args.max_instructions)
    except (FrontendError, LayoutError) as e:
        raise CommandError(str(e)) from None
    except CpuError as e:
        if e.result is not None:
            print(f"mmiobus cpu {args.name}: {e.result.summary()}", file=sys.stderr)
        if isinstance(e, BusAccessError) and isinstance(e.fault, BusLost):
            print(f"mmiobus cpu: error: {e.fault} (the CPU was at pc={e.pc:#x})",
                  file=sys.stderr)  # fmt: skip
            return EXIT_ERROR
        status = EXIT_FAULT if isinstance(e, BusAccessError) else EXIT_ERROR
        print(f"mmiobus cpu: error: {e}", file=sys.stderr)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"mmiobus cpu {args.name}: {result.summary()}", flush=True)
    if frontend.private_ram:
        print(
            f"mmiobus cpu {args.name}: ran on a private copy of "
            f"{', '.join(frontend.private_ram)} (the bus is on another host)",
            file=sys.stderr,
        )
    if result.reason is ExitReason.GUEST_EXIT:
        return int(result.exit_code or 0)
    if args.until is not None and result.reason is not ExitReason.REACHED and not stopped["signal"]:
        print(
            f"mmiobus cpu run: error: the CPU did not reach {args.until:#x} "
            f"({result.reason.value})",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return 0
