"""The device tree writer and the trees generated for the CPUs' firmware, checked with dtc and,
where firmware reads them, property by property against the trees QEMU 7.2 builds itself
(``-machine virt,dumpdtb=``). Register sizes are the description's regions' (QEMU's ``info
mtree`` sizes), which QEMU's trees round up for some devices; addresses are QEMU's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mmiobus.machine import Machine
from mmiobus.machine.devicetree import device_tree
from mmiobus.machine.fdt import Node, cells, to_dtb


def need_tool(tool: str, packages: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is missing: apt-get install {packages}")
    return found


def dts(blob: bytes, tmp_path: Path) -> str:
    """The tree as dtc decompiles it."""
    dtc = need_tool("dtc", "device-tree-compiler")
    path = tmp_path / "t.dtb"
    path.write_bytes(blob)
    done = subprocess.run(
        [dtc, "-I", "dtb", "-O", "dts", str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_writer_round_trips_through_dtc(tmp_path):
    root = Node("", {"#address-cells": 2, "#size-cells": 1, "model": "m"})
    root.add(
        "a@10", {"reg": cells(0, 0x10, 4), "flag": True, "names": ["x", "yz"], "raw": b"\x01\x02"}
    )
    blob = to_dtb(root, reserved=[(0x1000, 0x2000)])
    assert blob[:4] == b"\xd0\x0d\xfe\xed" and len(blob) % 8 == 0
    text = dts(blob, tmp_path)
    assert 'model = "m";' in text and "reg = <0x00 0x10 0x04>;" in text
    assert "flag;" in text and 'names = "x\\0yz";' in text and "raw = [01 02];" in text
    assert "/memreserve/\t0x0000000000001000 0x0000000000002000;" in text


def test_writer_rejects_bad_values():
    with pytest.raises(ValueError):
        cells(1 << 32)
    with pytest.raises(TypeError):
        to_dtb(Node("", {"x": 1.5}))  # type: ignore[dict-item]


def _nodes(text: str) -> dict[str, dict[str, str]]:
    """Node name -> {property: value as dtc prints it}, from dtc's DTS output."""
    nodes: dict[str, dict[str, str]] = {}
    stack: list[dict[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("{"):
            stack.append(nodes.setdefault(line[:-1].strip(), {}))
        elif line == "};":
            stack.pop()
        elif stack and line.endswith(";"):
            key, _, value = line[:-1].partition(" = ")
            stack[-1][key] = value
    return nodes


def _qemu_tree(tmp_path: Path, args: list[str], package: str) -> dict[str, dict[str, str]]:
    qemu = need_tool(args[0], package)
    out = tmp_path / "q.dtb"
    subprocess.run(
        [qemu, "-machine", f"virt,dumpdtb={out}", *args[1:]], check=True, capture_output=True
    )
    return _nodes(dts(out.read_bytes(), tmp_path))


def _our_tree(machine: Machine, tmp_path: Path) -> dict[str, dict[str, str]]:
    return _nodes(dts(device_tree(machine, machine.cpus["cpu0"]), tmp_path))


def _reg(value: str) -> list[tuple[int, int]]:
    """(address, size) pairs of a ``reg`` with two address and two size cells."""
    c = [int(word, 16) for word in value.strip("<>").split()]
    return [((c[i] << 32) | c[i + 1], (c[i + 2] << 32) | c[i + 3]) for i in range(0, len(c), 4)]


def _compare(
    ours: dict[str, dict[str, str]],
    qemu: dict[str, dict[str, str]],
    wanted: dict[str, list[str]],
    sizes: dict[str, list[int]],
) -> None:
    """Each wanted property of each wanted node is QEMU's; but the ``reg`` of a node in
    ``sizes`` only has QEMU's addresses, its sizes being the description's regions' (firmware
    reads the addresses)."""
    for node, keys in wanted.items():
        assert node in ours, f"our tree has no {node} node"
        for key in keys:
            if key == "reg" and node in sizes:
                mine, theirs = _reg(ours[node]["reg"]), _reg(qemu[node]["reg"])
                assert [a for a, _ in mine] == [a for a, _ in theirs], (node, key)
                assert [s for _, s in mine] == sizes[node], (node, key)
            else:
                assert ours[node].get(key) == qemu[node][key], (node, key)


def test_riscv_tree_matches_qemu_where_firmware_reads(tmp_path):
    machine = Machine.builtin("riscv-virt")
    ours = _our_tree(machine, tmp_path)
    qemu = _qemu_tree(tmp_path, ["qemu-system-riscv64"], "qemu-system-misc")
    size = {name: machine.region(name).size for name in ("uart0", "aclint.swi", "aclint.mtimer")}
    _compare(
        ours,
        qemu,
        {
            "chosen": ["stdout-path"],
            "memory@80000000": ["reg", "device_type"],
            "serial@10000000": ["reg", "interrupts", "compatible", "clock-frequency"],
            "clint@2000000": ["reg", "compatible", "interrupts-extended"],
            "plic@c000000": [
                "reg",
                "compatible",
                "interrupts-extended",
                "phandle",
                "riscv,ndev",
                "#interrupt-cells",
                "#address-cells",
            ],
            "test@100000": ["reg", "compatible"],
            "cpus": ["timebase-frequency"],
            "poweroff": ["value", "regmap"],
        },
        sizes={
            "serial@10000000": [size["uart0"]],
            "clint@2000000": [size["aclint.swi"] + size["aclint.mtimer"]],
        },
    )
    assert ours["cpu@0"]["riscv,isa"] == '"rv64imafdc_zicsr_zifencei"'


def test_arm_tree_matches_qemu_where_uboot_reads(tmp_path):
    machine = Machine.builtin("arm-virt")
    ours = _our_tree(machine, tmp_path)
    qemu = _qemu_tree(tmp_path, ["qemu-system-aarch64", "-cpu", "cortex-a57"], "qemu-system-arm")
    _compare(
        ours,
        qemu,
        {
            "chosen": ["stdout-path"],
            "memory@40000000": ["reg"],
            "pl011@9000000": ["reg", "interrupts", "compatible", "clocks"],
            "intc@8000000": ["reg", "compatible", "#interrupt-cells"],
            "timer": ["interrupts", "compatible"],
            "psci": ["method", "compatible"],
            "apb-pclk": ["clock-frequency"],
        },
        sizes={"intc@8000000": [machine.region("gicd").size, machine.region("gicc").size]},
    )
