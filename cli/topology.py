"""``mmiobus apply``: topology operations from a YAML file, applied all together or not at all."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import args as a
from .console import read_text
from .errors import CommandError

# Every operation of mmiobus.client.topology.Transaction (a test keeps the two lists equal):
# name, required fields, optional fields, what it does. Written out here because importing the
# client would load gRPC for every `mmiobus --help`.
OPERATIONS = [
    ("create_region", "id, kind, size",
     "name, target, offset, file, valid, impl, endianness, unassigned, readonly, nonvolatile",
     "a new, unmapped region: container, ram, rom, romd, mmio or alias (file: its contents)"),
    ("delete_region", "id", "", "delete an unmapped region"),
    ("add_subregion", "parent, child, addr", "priority", "map child at addr inside parent"),
    ("remove_subregion", "child", "", "unmap a region from its container"),
    ("set_address", "id, addr", "", "move a mapped region within its container"),
    ("set_priority", "id, priority", "", "change a mapped region's priority"),
    ("set_enabled", "id, enabled", "", "enable or disable a region"),
    ("set_alias_offset", "id, offset", "", "slide an alias over its target"),
    ("set_size", "id, size", "", "resize a region"),
    ("set_readonly", "id, readonly", "", "set a region's readonly flag"),
    ("set_romd", "id, romd_mode", "", "switch a ROM device between ROMD and MMIO mode"),
    ("create_address_space", "id, root", "name", "a new address space rooted at a region"),
    ("delete_address_space", "id", "", "delete an address space (its regions stay)"),
]  # fmt: skip

EXAMPLE = """\
example (64 KiB of RAM at 0x20000000, and the timer's window switched off):
  - create_region: {id: scratch, kind: ram, size: 64K}
  - add_subregion: {parent: system, child: scratch, addr: 0x20000000}
  - set_enabled: {id: timer0, enabled: false}"""


def _operations_help() -> str:
    width = max(len(name) for name, *_ in OPERATIONS)
    lines = ["operations (fields in [] are optional):"]
    for name, required, optional, what in OPERATIONS:
        fields = required + (f" [{optional}]" if optional else "")
        lines.append(f"  {name:<{width}}  {what}\n  {'':<{width}}    fields: {fields}")
    return "\n".join(lines) + "\n\n" + EXAMPLE


def register(sub: Any) -> None:
    """Add ``apply`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "apply",
        help="apply topology operations from a YAML file, all or none",
        description="Apply the operations in FILE ('-' for standard input) as one transaction: "
        "all of them, or none when one is refused. FILE is a YAML list of "
        "`- OPERATION: {FIELD: VALUE, ...}`; numbers take units (64K, 0x1000, 2**20).",
        epilog=_operations_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="the operations, as YAML ('-': standard input)")
    a.add_client_options(p, spaces=False)
    p.set_defaults(func=cmd_apply)


def cmd_apply(args: argparse.Namespace) -> int:
    """``mmiobus apply``: the operations of a YAML file, as one transaction."""
    from mmiobus.client.topology import from_yaml

    text = read_text(args.file)
    stdin = args.file == "-"
    try:
        ops = from_yaml(
            text,
            Path(".") if stdin else Path(args.file).parent,
            source="<stdin>" if stdin else args.file,
        )
    except ValueError as e:
        raise CommandError(str(e)) from None
    if not ops.ops:
        source = "standard input" if stdin else args.file
        raise CommandError(f"{source} holds no operations: nothing to apply")
    with a.connect(args) as bus:
        reply = bus.apply(ops)
    print(
        f"applied {reply.applied} operation{'s' if reply.applied != 1 else ''} "
        f"(topology generation {reply.generation})"
    )
    return 0
