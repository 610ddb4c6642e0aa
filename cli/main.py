"""The ``mmiobus`` command line.

Each subcommand is a small function; errors are one line on stderr and a non-zero exit status.
Heavy imports happen inside the commands so that ``mmiobus --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_ERROR = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line (no traceback)."""


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# -- local machine commands ------------------------------------------------------------------


def cmd_mtree(args: argparse.Namespace) -> int:
    if args.server:
        if args.file:
            raise CommandError("give either a FILE or --server, not both")
        with _connect(args) as bus:
            _out(bus.mtree(flat=args.f, disabled=args.D))
        return 0
    from mmiobus.machine import Machine
    from mmiobus.memory import mtree

    machine = Machine.from_file(args.file) if args.file else Machine.default()
    _out(mtree(machine.system, flat=args.f, show_disabled=args.D))
    return 0


def cmd_import_qemu(args: argparse.Namespace) -> int:
    from mmiobus.machine.qemu_import import import_dump, to_yaml

    text = sys.stdin.read() if args.dump == "-" else _read_text(args.dump)
    desc, warnings = import_dump(text)
    for w in warnings:
        print(f"mmiobus import-qemu: warning: {w}", file=sys.stderr)
    source = "standard input" if args.dump == "-" else Path(args.dump).name
    header = (
        f"Imported from QEMU `info mtree -D` / `info mtree -f` output ({source}) by "
        "`mmiobus import-qemu`.\n"
        "`mmiobus mtree -f` on this file prints the flat views QEMU printed."
    )
    text_out = to_yaml(desc, header)
    if args.output:
        Path(args.output).write_text(text_out)
    else:
        _out(text_out)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from mmiobus.machine.description import json_schema

    _out(json_schema())
    return 0


# -- client commands -------------------------------------------------------------------------

EXIT_FAULT = 3  # the bus answered with a fault (MemTxResult other than OK)


def _connect(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from mmiobus.client import Bus

    return Bus(
        args.server or None,
        address_space=getattr(args, "address_space", "") or "",
        timeout=args.timeout,
    )


def _int(text: str) -> int:
    """An address or number: decimal, 0x hex, 0o octal, 0b binary; underscores allowed."""
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (use 0x... for hex)") from None


def _addr(text: str) -> int:
    value = _int(text)
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"address {text} is outside 0..0xffffffffffffffff")
    return value


def _length(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"length {text} is negative")
    return value


def hexdump(addr: int, data: bytes) -> str:
    """Lines of 16 bytes, each prefixed with its bus address, with an ASCII column."""
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i : i + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{(addr + i) & ((1 << 64) - 1):016x}  {hexes:<47}  |{text}|")
    return "\n".join(lines) + ("\n" if lines else "")


def cmd_read(args: argparse.Namespace) -> int:
    from mmiobus.client import MemTxResult
    from mmiobus.client.core import WIDTHS, byteorder

    fmt = args.format
    width = WIDTHS.get(fmt, 1)
    size = args.length if args.length is not None else (width if fmt in WIDTHS else 4)
    if size % width:
        raise CommandError(f"--format {fmt} needs a length that is a multiple of {width}")
    with _connect(args) as bus:
        r = bus.read(args.addr, size, check=False)
        order = byteorder(bus.info)
    if fmt == "raw":
        sys.stdout.buffer.write(r.data)
        sys.stdout.flush()
    elif fmt == "hex":
        _out(hexdump(args.addr, r.data))
    else:
        values = [int.from_bytes(r.data[i : i + width], order) for i in range(0, size, width)]
        _out("".join(f"{v:#0{2 + 2 * width}x}\n" for v in values))
    if r.result != MemTxResult.OK:
        print(
            f"mmiobus read: bus fault: {_result(r.result)} reading {size} bytes at {args.addr:#x}",
            file=sys.stderr,
        )
        return EXIT_FAULT
    return 0


def _result(result: int) -> str:
    from mmiobus.client.errors import _result_name

    return _result_name(result)  # type: ignore[arg-type]


def _write_data(args: argparse.Namespace, order: str) -> bytes:
    from mmiobus.client.core import WIDTHS, encode_value

    fmt, data = args.format, args.data
    if fmt == "raw":
        if data == "-":
            return sys.stdin.buffer.read()
        if data.startswith("@"):
            try:
                return Path(data[1:]).read_bytes()
            except OSError as e:
                raise CommandError(f"cannot read {data[1:]}: {e.strerror}") from None
        return data.encode()
    if fmt == "hex":
        text = data.removeprefix("0x").replace(" ", "").replace(":", "").replace("_", "")
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise CommandError(
                f"{data!r} is not hex bytes (e.g. deadbeef or 'de ad be ef')"
            ) from None
    width = WIDTHS[fmt]
    try:
        return encode_value(_int(data), width, order)
    except (ValueError, argparse.ArgumentTypeError) as e:
        raise CommandError(str(e)) from None


def cmd_write(args: argparse.Namespace) -> int:
    from mmiobus.client import MemTxResult
    from mmiobus.client.core import byteorder

    with _connect(args) as bus:
        data = _write_data(args, byteorder(bus.info))
        result = bus.write(args.addr, data, check=False)
    if result != MemTxResult.OK:
        print(
            f"mmiobus write: bus fault: {_result(result)} writing {len(data)} bytes at "
            f"{args.addr:#x}",
            file=sys.stderr,
        )
        return EXIT_FAULT
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from mmiobus.client.topology import from_yaml

    text = sys.stdin.read() if args.file == "-" else _read_text(args.file)
    base = Path(".") if args.file == "-" else Path(args.file).parent
    try:
        ops = from_yaml(text, base)
    except ValueError as e:
        raise CommandError(str(e)) from None
    with _connect(args) as bus:
        reply = bus.apply(ops)
    print(
        f"applied {reply.applied} operation{'s' if reply.applied != 1 else ''} "
        f"(topology generation {reply.generation})"
    )
    return 0


def cmd_device_run(args: argparse.Namespace) -> int:
    import asyncio

    import yaml
    from mmiobus.devices import DeviceRunner, Placement
    from mmiobus.devices.runner import Refused, RegionRefused
    from mmiobus.server import logs
    from mmiobus.server.services.devices import load_device_class

    logs.configure(args.log_format, args.log_level)
    try:
        cls = load_device_class(args.target)
    except ValueError as e:
        raise CommandError(str(e)) from None
    kwargs = {}
    for item in args.arg or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"--arg {item!r}: use KEY=VALUE")
        kwargs[key] = yaml.safe_load(value) if value else ""
    try:
        device = cls(**kwargs)
    except TypeError as e:
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

    def ready(runner: DeviceRunner, regions: list) -> None:  # type: ignore[type-arg]
        ids = ", ".join(r.id for r in regions)
        print(f"mmiobus device {runner.name}: serving {ids} on {runner.server}", flush=True)

    runner = DeviceRunner(
        device,
        args.server or _default_server(),
        name=name,
        claims=args.claim,
        placement=placement,
        token=args.token or "",
        reconnect=not args.no_reconnect,
        on_ready=ready,
    )
    try:
        _run_async(runner.run())
    except (Refused, RegionRefused) as e:
        raise CommandError(f"the bus refused device {name!r}: {e}") from None
    except asyncio.CancelledError:
        return 0
    return 0


def _run_async(coro: object) -> None:
    import asyncio
    import signal

    async def main() -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())


def _default_server() -> str:
    from mmiobus.client.core import default_server

    return default_server()


def cmd_devices(args: argparse.Namespace) -> int:
    with _connect(args) as bus:
        devices = bus.devices()
    if not devices:
        print("no device is attached")
    for d in devices:
        where = "in the server" if d.in_process else d.peer
        print(
            f"{d.name:<16} {', '.join(d.regions):<24} {where:<24} accesses={d.accesses} "
            f"timeouts={d.timeouts} dma={d.dma}"
        )
    return 0


def cmd_reset_device(args: argparse.Namespace) -> int:
    with _connect(args) as bus:
        bus.reset_device(args.name, args.wait)
    print(f"device {args.name} has reset")
    return 0


def cmd_irqs(args: argparse.Namespace) -> int:
    with _connect(args) as bus:
        if not args.watch:
            for name, level in bus.irqs(*args.patterns).items():
                print(f"{name} {int(level)}")
            return 0
        for event in bus.watch_irqs(*args.patterns):
            print(f"{event.line} {int(event.level)}", flush=True)
    return 0


def _range(text: str) -> tuple[int, int]:
    """START:END (end exclusive) or START+SIZE."""
    try:
        if "+" in text:
            start, size = text.split("+", 1)
            a = int(start.replace("_", ""), 0)
            return a, a + int(size.replace("_", ""), 0)
        start, end = text.split(":", 1)
        return int(start.replace("_", ""), 0), int(end.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not START:END or START+SIZE (e.g. 0x1000:0x2000)"
        ) from None


def cmd_trace(args: argparse.Namespace) -> int:
    import asyncio

    from mmiobus.client import AsyncBus
    from mmiobus.client.tracing import ChromeTrace, jsonl, text, trace_request

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
        trace_request(**filters)  # refuse a bad filter before connecting
    except ValueError as e:
        raise CommandError(str(e)) from None
    out = open(args.out, "w") if args.out else sys.stdout  # noqa: SIM115
    color = out is sys.stdout and sys.stdout.isatty()
    chrome = ChromeTrace(out) if args.format == "chrome" else None
    flush = args.format != "chrome" or not args.out

    async def record() -> None:
        count = 0
        async with AsyncBus(args.server or None, timeout=args.timeout) as bus:
            async with asyncio.timeout(args.duration or None):
                async for event in bus.trace(**filters):
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

    try:
        _run_async(record())  # Ctrl-C or SIGTERM ends the recording cleanly
    except TimeoutError:  # --duration elapsed
        pass
    finally:
        if chrome is not None:
            chrome.close()
        if out is not sys.stdout:
            out.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from mmiobus.client import MemTxAttrs
    from mmiobus.client.tracing import read_recording
    from mmiobus.server.trace import result_names

    try:
        events = [e for e in read_recording(_read_text(args.file)) if e["initiator"] == "client"]
    except (ValueError, KeyError) as e:
        raise CommandError(f"{args.file} is not a recording of `mmiobus trace`: {e}") from None
    for e in events:
        if e["dir"] == "write" and e["data_truncated"]:
            raise CommandError(
                f"seq {e['seq']}: the recording holds only part of a {e['size']}-byte write; "
                f"record again with `mmiobus trace --max-data {e['size']}` or more"
            )
    differences = 0
    with _connect(args) as bus, bus.stream() as s:
        futures = []
        for e in events:
            attrs = MemTxAttrs(requester_id=e["requester_id"]) if e["requester_id"] else None
            if e["dir"] == "write":
                f = s.write(
                    e["addr"],
                    bytes.fromhex(e["data"]),
                    address_space=e["address_space"],
                    attrs=attrs,
                    check=False,
                )
            else:
                f = s.read(
                    e["addr"], e["size"], address_space=e["address_space"], attrs=attrs, check=False
                )
            futures.append((e, f))
        for e, f in futures:
            got = f.result()
            result = int(got.result if e["dir"] == "read" else got)
            where = f"seq {e['seq']}: {e['dir']} of {e['size']} bytes at {e['addr']:#x}"
            if result != e["result"]:
                differences += 1
                print(f"{where}: result {result_names(result)} (recorded {e['result_name']})")
            if e["dir"] == "read":
                recorded = bytes.fromhex(e["data"])
                data = got.data[: len(recorded)]
                if data != recorded:
                    differences += 1
                    print(f"{where}: data {data.hex()} (recorded {recorded.hex()})")
    print(
        f"replayed {len(events)} access{'es' if len(events) != 1 else ''}: "
        f"{differences or 'no'} difference{'s' if differences != 1 else ''}"
    )
    return EXIT_DIFFERENT if differences else 0


EXIT_DIFFERENT = 4  # replay found differences


def cmd_info(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    with _connect(args) as bus:
        _out(json_format.MessageToJson(bus.info, indent=2) + "\n")
    return 0


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from mmiobus.machine import Machine
    from mmiobus.server import app, logs
    from mmiobus.server.config import Limits

    logs.configure(args.log_format, args.log_level)
    machine = Machine.from_file(args.config) if args.config else Machine.default()
    try:
        limits = Limits(
            max_access_bytes=args.max_access_bytes,
            max_batch_bytes=args.max_batch_bytes,
            max_batch_accesses=args.max_batch_accesses,
            max_topology_ops=args.max_topology_ops,
            max_message_bytes=args.max_message_bytes,
            grace_seconds=args.grace,
        )
    except ValueError as e:
        raise CommandError(str(e)) from None

    def ready(addresses: list[str]) -> None:
        for address in addresses:
            print(f"mmiobus: listening on {address}", flush=True)

    try:
        return app.run_forever(
            machine,
            args.listen or [],
            limits,
            ready,
            device_deadline_ms=args.device_deadline,
            device_tokens=frozenset(args.device_token or []),
            trace_queue=args.trace_queue,
            trace_max_data=args.trace_max_data,
        )
    except app.ListenError as e:
        raise CommandError(str(e)) from None


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmiobus",
        description="A networked memory bus with QEMU's memory model.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
        metavar="ADDR",
        help="HOST:PORT or unix:PATH; repeat to listen on several (default: 127.0.0.1:7170; "
        "port 0 picks a free one)",
    )
    p.add_argument("--log-format", choices=["console", "json"], default="console")
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    p.add_argument("--max-access-bytes", type=int, default=d.max_access_bytes, metavar="N")
    p.add_argument("--max-batch-bytes", type=int, default=d.max_batch_bytes, metavar="N")
    p.add_argument("--max-batch-accesses", type=int, default=d.max_batch_accesses, metavar="N")
    p.add_argument("--max-topology-ops", type=int, default=d.max_topology_ops, metavar="N")
    p.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes, metavar="N")
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
        type=int,
        default=4096,
        metavar="N",
        help="the most data bytes a trace subscriber may ask to keep per event",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "mtree",
        help="print a machine's memory tree as QEMU's `info mtree` does",
        description="Print a machine description (or the built-in default machine) in the "
        "formats of QEMU 7.2's `info mtree [-f] [-D]`.",
    )
    p.add_argument("file", nargs="?", help="machine description (YAML); default: built-in")
    p.add_argument("-f", action="store_true", help="print the flat views")
    p.add_argument("-D", action="store_true", help="include disabled regions")
    p.add_argument("--server", "-s", metavar="ADDR", help="print a running bus's tree instead")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    p.set_defaults(func=cmd_mtree)

    p = sub.add_parser(
        "import-qemu",
        help="turn QEMU `info mtree -D` + `info mtree -f` output into a machine description",
    )
    p.add_argument("dump", help="text pasted from a QEMU monitor session ('-' for stdin)")
    p.add_argument("-o", "--output", help="write the YAML here instead of standard output")
    p.set_defaults(func=cmd_import_qemu)

    p = sub.add_parser("schema", help="print the JSON Schema of machine descriptions")
    p.set_defaults(func=cmd_schema)

    def client(p: argparse.ArgumentParser, spaces: bool = True) -> None:
        p.add_argument(
            "--server",
            "-s",
            metavar="ADDR",
            help="HOST:PORT or unix:PATH of the bus (default: $MMIOBUS_SERVER or 127.0.0.1:7170)",
        )
        p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
        if spaces:
            p.add_argument("--address-space", "-a", metavar="ID", help="default: the first one")

    formats = ["hex", "raw", "u8", "u16", "u32", "u64"]
    p = sub.add_parser(
        "read",
        help="read bytes from the bus",
        description="Read LEN bytes (default 4, or one value with --format uN) at ADDR and "
        "print them. Exit status 3 if the bus answered with a fault.",
    )
    p.add_argument("addr", type=_addr, metavar="ADDR")
    p.add_argument("length", type=_length, nargs="?", metavar="LEN")
    p.add_argument(
        "--format",
        "-f",
        choices=formats,
        default="hex",
        help="hex: a hexdump (default); raw: the bytes; uN: values in the bus's byte order",
    )
    client(p)
    p.set_defaults(func=cmd_read)

    p = sub.add_parser(
        "write",
        help="write bytes to the bus",
        description="Write DATA at ADDR. Exit status 3 if the bus answered with a fault.",
    )
    p.add_argument("addr", type=_addr, metavar="ADDR")
    p.add_argument(
        "data",
        metavar="DATA",
        help="hex bytes (deadbeef, 'de ad be ef'); a number with --format uN; with --format "
        "raw: the text itself, @FILE, or - for standard input",
    )
    p.add_argument("--format", "-f", choices=formats, default="hex")
    client(p)
    p.set_defaults(func=cmd_write)

    p = sub.add_parser(
        "apply",
        help="apply topology operations from a YAML file, all or none",
        description="Apply the operations in FILE ('-' for stdin) as one transaction. "
        "FILE is a list such as:  - add_subregion: {parent: system, child: scratch, addr: 0x1000}",
    )
    p.add_argument("file", metavar="FILE")
    client(p, spaces=False)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("info", help="what the server is: version, byte order, limits")
    client(p, spaces=False)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("devices", help="list the attached devices")
    client(p, spaces=False)
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("reset-device", help="ask a device to reset and wait until it has")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--wait", type=float, default=5.0, metavar="SECONDS")
    client(p, spaces=False)
    p.set_defaults(func=cmd_reset_device)

    p = sub.add_parser("irqs", help="interrupt line levels (--watch to follow changes)")
    p.add_argument("patterns", nargs="*", metavar="LINE", help="names or globs (uart0.*)")
    p.add_argument("--watch", "-w", action="store_true", help="print every change until ^C")
    client(p, spaces=False)
    p.set_defaults(func=cmd_irqs)

    p = sub.add_parser(
        "trace",
        help="watch the accesses the bus serves, live",
        description="Print (or record) every access that passes the filters: client accesses "
        "and device DMA. Filtering happens in the server. A subscriber that falls behind "
        "loses events and says how many.",
    )
    p.add_argument(
        "--range",
        type=_range,
        action="append",
        metavar="START:END",
        help="addresses (end exclusive) or START+SIZE; repeatable",
    )
    p.add_argument("--space", action="append", metavar="ID", help="address space; repeatable")
    p.add_argument("--region", action="append", metavar="GLOB", help="region id glob; repeatable")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--read", action="store_true", help="reads only")
    way.add_argument("--write", action="store_true", help="writes only")
    p.add_argument("--kind", action="append", choices=["ram", "rom", "romd", "mmio", "unassigned"])
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
        help="keep this fraction of the matching accesses",
    )
    p.add_argument(
        "--max-data",
        type=int,
        default=0,
        metavar="N",
        help="bytes of data kept per access (server default 64)",
    )
    p.add_argument(
        "--queue",
        type=int,
        default=0,
        metavar="N",
        help="events the server queues for this subscriber before it loses them "
        "(server default: serve --trace-queue)",
    )
    p.add_argument(
        "--format",
        choices=["text", "jsonl", "chrome"],
        default="text",
        help="text for people, jsonl for machines (and replay), chrome for Perfetto",
    )
    p.add_argument("--out", "-o", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--count", type=int, default=0, metavar="N", help="stop after N accesses")
    p.add_argument(
        "--duration", type=float, default=0, metavar="SECONDS", help="stop after this long"
    )
    client(p, spaces=False)
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser(
        "replay",
        help="re-issue recorded client accesses and report differences",
        description="Re-issue, in order, the client accesses of a recording made with "
        "`mmiobus trace --format jsonl` (or chrome) and report every access whose data or "
        "result differs. Exit status 4 when something differs.",
    )
    p.add_argument("file", metavar="FILE")
    client(p, spaces=False)
    p.set_defaults(func=cmd_replay)

    d = sub.add_parser("device", help="run a device model").add_subparsers(
        dest="device_command", metavar="COMMAND", required=True
    )
    p = d.add_parser(
        "run",
        help="serve a region of the bus with a Device class, in this process",
        description="Run MODULE:CLASS (an mmiobus.devices.Device) against a bus: claim a "
        "region of the machine description (--claim) or register one at an address (--at). "
        "Reconnects with back-off when the bus goes away.",
    )
    p.add_argument(
        "target", metavar="MODULE:CLASS", help="e.g. mmiobus.devices.models.uart16550:Uart16550"
    )
    p.add_argument(
        "--server",
        "-s",
        metavar="ADDR",
        help="the bus (default: $MMIOBUS_SERVER or 127.0.0.1:7170)",
    )
    p.add_argument("--name", help="device name (default: the first claimed region, or the class)")
    p.add_argument(
        "--claim",
        action="append",
        metavar="REGION",
        help="serve this region of the machine description (repeatable)",
    )
    p.add_argument("--at", type=_addr, metavar="ADDR", help="register a new region at ADDR")
    p.add_argument(
        "--size", type=_length, help="size of the registered region (default: the class's)"
    )
    p.add_argument(
        "--address-space", "-a", metavar="ID", help="map --at in this address space's root"
    )
    p.add_argument("--container", metavar="REGION", help="map --at inside this container instead")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--region-id", metavar="ID", help="id of the registered region (default: NAME)")
    p.add_argument(
        "--deadline", type=int, metavar="MS", help="answer deadline of the registered region"
    )
    p.add_argument(
        "--arg",
        action="append",
        metavar="KEY=VALUE",
        help="constructor argument (YAML value; repeatable)",
    )
    p.add_argument("--token", help="credentials, when the bus requires them")
    p.add_argument("--no-reconnect", action="store_true", help="exit when the bus goes away")
    p.add_argument("--log-format", choices=["console", "json"], default="console")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_device_run)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from mmiobus.client.errors import BusError
    from mmiobus.machine.description import DescriptionError
    from mmiobus.machine.qemu_import import ImportError_
    from mmiobus.memory.errors import MemoryModelError

    return (CommandError, DescriptionError, MemoryModelError, ImportError_, OSError, BusError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except _known_errors() as e:
        for line in str(e).splitlines() or [type(e).__name__]:
            print(f"mmiobus {args.command}: error: {line}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
