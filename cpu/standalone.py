"""A machine's CPU on its own: no server, no network — the board built from the machine
description, RAM in this process, and the serial port (or any device model) called directly
from the engine as a local hook. What benchmarks compare the bus against, and what tests of
the engine use.

    machine = Machine.builtin("riscv-virt")
    board, uart = standalone(machine)
    board.load(0x8000_0000, firmware, "firmware")
    board.engine.run(until_pc=0x8020_0000)
    uart.transmitted                      # what the guest printed
"""

from __future__ import annotations

from typing import Any

from mmiobus.devices.models.pl011 import Pl011
from mmiobus.devices.models.uart16550 import Uart16550
from mmiobus.machine import Machine
from mmiobus.server.services.convert import cpu_to_pb, topology_to_pb
from mmiobus.server.sharing import SharedRam

from .board import Board, build
from .bus import DeviceBus
from .layout import layout


def standalone(
    machine: Machine, cpu_name: str = "cpu0", *, count_instructions: bool = False
) -> tuple[Board, Any]:
    """The board of CPU ``cpu_name`` with its console's device model on a local bus; returns
    the board and that model (a ``Uart16550`` on riscv64, a ``Pl011`` on aarch64, writing
    nowhere: read what it transmitted from ``.transmitted``, type with ``.receive``)."""
    spec = machine.cpus[cpu_name]
    cpu = cpu_to_pb(machine, spec)
    lay = layout(cpu, topology_to_pb(machine, {}, flat_views=True))
    sharing = SharedRam()
    backings = {
        region: sharing.share(machine.region(region), region).mapping
        for region in lay.regions_to_share
    }
    bus = DeviceBus()
    console: Any = None
    if spec.console is not None:
        console = (Uart16550 if spec.arch == "riscv64" else Pl011)(output="none", input="none")
        space = machine.address_space(spec.address_space or "")
        mr = machine.region(spec.console)
        fr = next(fr for fr in space.flatview.ranges if fr.mr is mr)
        bus.attach(fr.start - fr.offset, mr.size, console, spec.console)
    board = build(lay, bus, backings, count_instructions=count_instructions)
    board.load(cpu.fdt_addr, cpu.fdt, "device tree")
    return board, console
