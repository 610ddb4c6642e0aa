"""The flattened device tree a CPU's firmware reads, generated from the machine description:
memory, the CPU, the serial port it prints to and the board devices (timers, interrupt
controller, power-off), laid out as QEMU 7.2's virt boards lay them out (same node names,
compatible strings and phandles where firmware looks for them), with the addresses where the
description puts each region.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .contents import load_file_contents
from .cpus import CpuSpec
from .fdt import Node, PropValue, cells, to_dtb

if TYPE_CHECKING:
    from .build import Machine

MiB = 1 << 20


class Layout:
    """Where a CPU sees the regions the device tree describes: (address, size) by region id,
    in the CPU's address space."""

    def __init__(self, machine: Machine, cpu: CpuSpec) -> None:
        self.machine = machine
        self.cpu = cpu
        self.space = machine.address_space(cpu.address_space or "")

    def place(self, region_id: str) -> tuple[int, int]:
        """The address a region shows at in the CPU's address space, and its size."""
        mr = self.machine.region(region_id)
        for fr in self.space.flatview.ranges:
            if fr.mr is mr:
                return fr.start - fr.offset, mr.size
        raise ValueError(f"region {region_id!r} does not show in address space {self.space.name!r}")

    def role(self, name: str) -> tuple[int, int]:
        return self.place(self.cpu.board_devices[name])

    def irq(self, region_id: str | None) -> int | None:
        """The interrupt input the line of the device serving ``region_id`` is wired to."""
        if region_id is None:
            return None
        spec = self.machine.declared[region_id].spec
        device = getattr(spec, "device", None)
        name = device if isinstance(device, str) else region_id
        return self.cpu.interrupts.get(f"{name}.irq")


def _reg(base: int, size: int) -> tuple[int, ...]:
    return cells(base >> 32, base & 0xFFFFFFFF, size >> 32, size & 0xFFFFFFFF)


def riscv_virt(layout: Layout) -> bytes:
    """RISC-V virt: one hart with the CLINT (ACLINT) and PLIC, a 16550, sifive_test."""
    cpu = layout.cpu
    ram, ram_size = layout.place(cpu.ram)
    root = Node("", {"#address-cells": 2, "#size-cells": 2, "compatible": "riscv-virtio",
                     "model": "riscv-virtio,qemu"})  # fmt: skip
    chosen = root.add("chosen")
    root.add(f"memory@{ram:x}", device_type="memory", reg=_reg(ram, ram_size))
    cpus = root.add("cpus", {"#address-cells": 1, "#size-cells": 0,
                             "timebase-frequency": cpu.timebase})  # fmt: skip
    hart = cpus.add("cpu@0", {"phandle": 1, "device_type": "cpu", "reg": 0, "status": "okay",
                              "compatible": "riscv", "riscv,isa": "rv64imafdc_zicsr_zifencei",
                              "mmu-type": "riscv,sv39"})  # fmt: skip
    hart.add("interrupt-controller", {"#interrupt-cells": 1, "interrupt-controller": True,
                                      "compatible": "riscv,cpu-intc", "phandle": 2})  # fmt: skip
    soc = root.add("soc", {"#address-cells": 2, "#size-cells": 2, "compatible": "simple-bus",
                           "ranges": True})  # fmt: skip
    if "test" in cpu.board_devices:
        test, size = layout.role("test")
        soc.add(
            f"test@{test:x}",
            {
                "phandle": 4,
                "reg": _reg(test, size),
                "compatible": ["sifive,test1", "sifive,test0", "syscon"],
            },
        )
        root.add("poweroff", value=0x5555, offset=0, regmap=4, compatible="syscon-poweroff")
        root.add("reboot", value=0x7777, offset=0, regmap=4, compatible="syscon-reboot")
    if cpu.console is not None:
        uart, size = layout.place(cpu.console)
        props: dict[str, PropValue] = {
            "clock-frequency": 3686400, "reg": _reg(uart, size), "compatible": "ns16550a"
        }  # fmt: skip
        irq = layout.irq(cpu.console)
        if irq is not None:
            props["interrupts"] = irq
            props["interrupt-parent"] = 3
        soc.add(f"serial@{uart:x}", props)
        chosen.props["stdout-path"] = f"/soc/serial@{uart:x}"
    plic, plic_size = layout.role("plic")
    soc.add(f"plic@{plic:x}", {"phandle": 3, "riscv,ndev": 96, "reg": _reg(plic, plic_size),
                               "interrupts-extended": cells(2, 11, 2, 9),
                               "interrupt-controller": True,
                               "compatible": ["sifive,plic-1.0.0", "riscv,plic0"],
                               "#address-cells": 0, "#interrupt-cells": 1})  # fmt: skip
    swi, _ = layout.role("aclint-swi")
    mtimer, mtimer_size = layout.role("aclint-mtimer")
    soc.add(f"clint@{swi:x}", {"interrupts-extended": cells(2, 3, 2, 7),
                               "reg": _reg(swi, mtimer + mtimer_size - swi),
                               "compatible": ["sifive,clint0", "riscv,clint0"]})  # fmt: skip
    return to_dtb(root)


def aarch64_virt(layout: Layout) -> bytes:
    """Arm virt: one Cortex-A57 with GICv2 and the generic timer, a PL011, PSCI by hvc."""
    cpu = layout.cpu
    ram, ram_size = layout.place(cpu.ram)
    gic, clk = 0x8002, 0x8000
    root = Node("", {"interrupt-parent": gic, "#size-cells": 2, "#address-cells": 2,
                     "compatible": "linux,dummy-virt", "model": "linux,dummy-virt"})  # fmt: skip
    root.add("psci", {"migrate": 0xC4000005, "cpu_on": 0xC4000003, "cpu_off": 0x84000002,
                      "cpu_suspend": 0xC4000001, "method": "hvc",
                      "compatible": ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]})  # fmt: skip
    root.add(f"memory@{ram:x}", reg=_reg(ram, ram_size), device_type="memory")
    chosen = root.add("chosen")
    if cpu.console is not None:
        uart, size = layout.place(cpu.console)
        props: dict[str, PropValue] = {"clock-names": ["uartclk", "apb_pclk"], "clocks": cells(clk, clk),
                 "reg": _reg(uart, size), "compatible": ["arm,pl011", "arm,primecell"]}  # fmt: skip
        irq = layout.irq(cpu.console)
        if irq is not None:
            props["interrupts"] = cells(0, irq, 4)
        root.add(f"pl011@{uart:x}", props)
        chosen.props["stdout-path"] = f"/pl011@{uart:x}"
    dist, dist_size = layout.role("gic-distributor")
    cpuif, cpuif_size = layout.role("gic-cpu")
    root.add(f"intc@{dist:x}", {"phandle": gic,
                                "reg": _reg(dist, dist_size) + _reg(cpuif, cpuif_size),
                                "compatible": "arm,cortex-a15-gic", "ranges": True,
                                "#size-cells": 2, "#address-cells": 2,
                                "interrupt-controller": True, "#interrupt-cells": 3})  # fmt: skip
    cpus = root.add("cpus", {"#size-cells": 0, "#address-cells": 1})
    cpus.add("cpu@0", {"phandle": 0x8001, "reg": 0, "compatible": "arm,cortex-a57",
                       "device_type": "cpu"})  # fmt: skip
    root.add("timer", {"interrupts": cells(1, 13, 0x104, 1, 14, 0x104, 1, 11, 0x104,
                                           1, 10, 0x104),
                       "always-on": True,
                       "compatible": ["arm,armv8-timer", "arm,armv7-timer"]})  # fmt: skip
    root.add("apb-pclk", {"phandle": clk, "clock-output-names": "clk24mhz",
                          "clock-frequency": 24_000_000, "#clock-cells": 0,
                          "compatible": "fixed-clock"})  # fmt: skip
    return to_dtb(root)


GENERATORS: dict[tuple[str, str], Callable[[Layout], bytes]] = {
    ("riscv64", "virt"): riscv_virt,
    ("aarch64", "virt"): aarch64_virt,
}


def device_tree(machine: Machine, cpu: CpuSpec) -> bytes:
    """The device tree blob for ``cpu``: the file its description names, else generated."""
    if cpu.fdt.file is not None:
        return load_file_contents(cpu.fdt.file, machine.base_dir, 16 * MiB)
    return GENERATORS[(cpu.arch, cpu.board)](Layout(machine, cpu))


def device_tree_addr(machine: Machine, cpu: CpuSpec, blob: bytes) -> int:
    """Where the device tree loads: the description's address, else the board's place (QEMU
    puts it at the end of RAM, 2 MiB aligned, on riscv virt; at the start of RAM on arm virt,
    where firmware started from flash finds it)."""
    if cpu.fdt.addr is not None:
        return cpu.fdt.addr
    ram, size = Layout(machine, cpu).place(cpu.ram)
    if cpu.arch == "riscv64":
        return (ram + size - len(blob)) & ~(2 * MiB - 1)
    return ram
