"""The ``mmiobus`` command line: the parser, assembled from each command group's module, and
``main``, which runs a command and turns its failures into one line and an exit status.

Command groups, one module each: ``serve``; ``machine`` (mtree, schema, import-qemu);
``memory`` (read, write); ``transfer`` (load, dump, fill); ``topology`` (apply); ``regions``;
``info``; ``devices`` (devices, reset-device, irqs); ``device_run`` (device run); ``cpu`` (cpu
run); ``trace`` (trace, replay); ``monitor``; ``up`` and ``compose`` (benches);
``completion``. Shared argument types live in ``args``.

Exit statuses: 0 success, 1 an error, 2 a usage error, 3 a bus fault, 4 differences found by
``replay`` (``errors``). Heavy imports happen inside the commands, so ``mmiobus --help``
stays quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import (
    completion,
    compose,
    cpu,
    device_run,
    devices,
    info,
    machine,
    memory,
    monitor,
    pci_proxy,
    regions,
    serve,
    topology,
    trace,
    transfer,
    up,
)
from .errors import EXIT_ERROR, EXIT_FAULT, EXIT_INTERRUPTED, CommandError

# In the order `mmiobus --help` lists them.
GROUPS = (
    serve,
    machine,
    memory,
    transfer,
    topology,
    regions,
    info,
    devices,
    device_run,
    cpu,
    pci_proxy,
    trace,
    monitor,
    up,
    compose,
    completion,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``mmiobus`` parser; each parsed command carries its function as ``func``."""
    from mmiobus import __version__

    parser = argparse.ArgumentParser(
        prog="mmiobus",
        description="A networked memory bus with QEMU's memory model.",
        epilog="`mmiobus COMMAND --help` tells more about each command. Exit status: 0 done, "
        "1 error, 2 usage error, 3 bus fault, 4 differences found by replay.",
    )
    parser.add_argument(
        "--version", action="version", version=f"mmiobus {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    """What a command may fail with and report as one line; anything else is a bug."""
    from mmiobus.client.errors import BusError
    from mmiobus.machine.errors import DescriptionError
    from mmiobus.machine.qemu_import import QemuDumpError
    from mmiobus.memory.errors import MemoryModelError

    return (CommandError, DescriptionError, MemoryModelError, QemuDumpError, OSError, BusError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``mmiobus`` command line; returns the exit status (``--help`` included)."""
    if "grpc" not in sys.modules:
        # gRPC's C core logs its own view of a failure on stderr before ours; ours says what
        # to do. GRPC_VERBOSITY=debug (or info, error) brings its lines back.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse has already printed
        return e.code if isinstance(e.code, int) else 0 if e.code is None else EXIT_ERROR
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except _known_errors() as e:
        from mmiobus.client.errors import BusFault

        label = e.label if isinstance(e, CommandError) else "error"
        if isinstance(e, BusFault):
            label = "bus fault"
        for line in str(e).splitlines() or [type(e).__name__]:
            print(f"mmiobus {args.command}: {label}: {line}", file=sys.stderr)
        if isinstance(e, CommandError):
            return e.exit_status
        return EXIT_FAULT if isinstance(e, BusFault) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
