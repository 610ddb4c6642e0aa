"""The ``mmiobus`` command line: the parser, assembled from each command group's module, and
``main``, which runs a command and turns its failures into one line and an exit status.

Command groups, one module each: ``serve``; ``memory`` (read, write); ``machine`` (mtree,
schema, import-qemu); ``topology`` (apply); ``info``; ``devices`` (devices, reset-device, irqs,
device run); ``trace`` (trace, replay). Shared argument types live in ``args``.

Exit statuses: 0 success, 1 an error, 2 a usage error, 3 a bus fault, 4 differences found by
``replay`` (``errors``). Heavy imports happen inside the commands, so ``mmiobus --help``
stays quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import devices, info, machine, memory, serve, topology, trace
from .errors import EXIT_ERROR, EXIT_INTERRUPTED, CommandError

# In the order `mmiobus --help` lists them.
GROUPS = (serve, machine, memory, topology, info, devices, trace)


def build_parser() -> argparse.ArgumentParser:
    """The ``mmiobus`` parser; each parsed command carries its function as ``func``."""
    parser = argparse.ArgumentParser(
        prog="mmiobus",
        description="A networked memory bus with QEMU's memory model.",
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
        for line in str(e).splitlines() or [type(e).__name__]:
            print(f"mmiobus {args.command}: error: {line}", file=sys.stderr)
        return e.exit_status if isinstance(e, CommandError) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
