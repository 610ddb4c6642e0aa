"""``mmiobus device rtl``: a Verilog module serving a bus region through an APB
bus-functional model, simulated by Icarus Verilog under cocotb (``pip install mmiobus[rtl]``)."""

from __future__ import annotations

import argparse
from typing import Any

from . import args as a
from .console import run_until_interrupted
from .errors import CommandError, UsageError


def register_device(group: Any) -> None:
    """Add ``rtl`` to the ``device`` subcommands."""
    p = group.add_parser(
        "rtl",
        help="serve a region of the bus with a Verilog module (APB, Icarus Verilog + cocotb)",
        description="Compile SOURCES with Icarus Verilog and simulate TOP under cocotb; bus "
        "accesses to the region become APB transfers (PSEL, PENABLE, PWRITE, PADDR, PWDATA, "
        "PRDATA; PSTRB, PREADY, PSLVERR if the module has them), the module's interrupt "
        "outputs (--irq) drive bus lines. Simulated time stands still between accesses unless "
        "--idle-cycles says otherwise (see docs/peers.md). Needs `pip install mmiobus[rtl]` "
        "and Debian's iverilog.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE.v", help="Verilog files")
    p.add_argument("--top", required=True, help="the top module (the APB completer)")
    a.add_server_option(p)
    p.add_argument("--claim", metavar="REGION[=APBADDR]",
                   help="serve this region of the description (offset 0 is APB address "
                   "APBADDR, default 0)")  # fmt: skip
    p.add_argument("--at", metavar="ADDR:SIZE[=APBADDR]",
                   help="register a new region of SIZE bytes at bus address ADDR")  # fmt: skip
    p.add_argument("--name", help="device name (default: the claimed region, or TOP)")
    p.add_argument("--prefix", help="prefix of the APB port names, e.g. s_apb_ (default: none)")
    p.add_argument("--clock", default="pclk", help="the clock port (default: %(default)s)")
    p.add_argument("--reset", default="presetn",
                   help="the active-low reset port (default: %(default)s)")  # fmt: skip
    p.add_argument("--period", type=float, default=10.0, metavar="NS",
                   help="the clock period in ns (default: %(default)g)")  # fmt: skip
    p.add_argument("--irq", action="append", metavar="PORT[=LINE]",
                   help="an interrupt output: bus line NAME.LINE follows it (LINE: PORT); "
                   "repeatable")  # fmt: skip
    p.add_argument("--idle-cycles", type=a.number, default=0, metavar="N",
                   help="run N clock cycles each --idle-ms without an access (default: 0, "
                   "time stands still between accesses)")  # fmt: skip
    p.add_argument("--idle-ms", type=float, default=10.0, metavar="MS",
                   help="see --idle-cycles (default: %(default)g)")  # fmt: skip
    a.add_session_options(p)
    a.add_log_options(p)
    p.set_defaults(func=cmd_device_rtl)


def _irqs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        port, _, line = item.partition("=")
        if not port.strip():
            raise UsageError(f"--irq {item!r}: write PORT or PORT=LINE")
        out[port.strip()] = line.strip() or port.strip()
    return out


def cmd_device_rtl(args: argparse.Namespace) -> int:
    """Simulate the module and serve its region until stopped."""
    import grpc
    from mmiobus.client.errors import from_rpc_error
    from mmiobus.devices.runner import Refused, RegionRefused
    from mmiobus.peers.session import PeerExited
    from mmiobus.peers.windows import WindowError, parse_claim, parse_registration
    from mmiobus.rtl.build import BuildError, SimulatorMissing
    from mmiobus.rtl.device import RtlDeviceOptions, SimOptions, SimulatorError, serve
    from mmiobus.server import logs

    from .device_run import _refused

    logs.configure(args.log_format, args.log_level)
    if (args.claim is None) == (args.at is None):
        raise UsageError("say which region to serve: --claim REGION or --at ADDR:SIZE")
    try:
        window = parse_claim(args.claim) if args.claim else parse_registration(args.at, 0)
    except WindowError as e:
        raise CommandError(str(e)) from None
    name = args.name or (window.region if window.region is not None else args.top)
    server = a.resolve_server(args.server)
    sim = SimOptions(
        args.prefix or "",
        args.clock,
        args.reset,
        args.period,
        _irqs(args.irq or []),
        args.idle_cycles,
        args.idle_ms,
    )

    def ready(runner: Any, regions: list[Any]) -> None:
        ids = ", ".join(r.id for r in regions)
        print(f"mmiobus device {runner.name}: serving {ids} on {runner.server} with "
              f"{args.top} (Icarus Verilog)", flush=True)  # fmt: skip

    opts = RtlDeviceOptions(server, name, window, list(args.sources), args.top, sim,
                            token=args.token or "", credentials=a.credentials(args), reconnect=not args.no_reconnect,
                            on_ready=ready)  # fmt: skip
    try:
        run_until_interrupted(serve(opts))
    except (Refused, RegionRefused) as e:
        raise _refused(name, e.code, str(e)) from None
    except grpc.RpcError as e:
        raise CommandError(str(from_rpc_error(e, server))) from None
    except (SimulatorMissing, BuildError, SimulatorError, WindowError) as e:
        raise CommandError(str(e)) from None
    except PeerExited as e:
        raise CommandError(f"the simulator went away: {e}") from None
    return 0
