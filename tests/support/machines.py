"""Machine descriptions built in the tests: regions served by devices, and whole little-endian
machines as YAML text."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

# The machine of ``device_machine``: RAM at 0, and a second address space DMA_SPACE of
# DMA_WINDOW bytes whose address 0 is RAM byte DMA_OFFSET.
RAM_SIZE = 16 << 20
DMA_SPACE, DMA_OFFSET, DMA_WINDOW = "dma", 0x800000, 0x100000
HOLE = 0x30000000  # nothing is mapped there in the machines of these tests


def mmio(
    name: str,
    addr: int,
    size: int,
    device: str | dict[str, Any],
    *,
    valid: tuple[int, int] = (1, 8),
    impl: tuple[int, int] = (1, 8),
    **extra: Any,
) -> dict[str, Any]:
    """A little-endian mmio region served by ``device``: a device name, or ``in_server(...)``."""
    return {
        "name": name,
        "kind": "mmio",
        "addr": addr,
        "size": size,
        "valid": {"min": valid[0], "max": valid[1]},
        "impl": {"min": impl[0], "max": impl[1]},
        "endianness": "little",
        "device": device,
        **extra,
    }


def in_server(target: str, **args: Any) -> dict[str, Any]:
    """``device: {class: ..., args: ...}``: the server runs the device itself."""
    return {"class": target, "args": args}


def machine_yaml(
    subregions: list[dict[str, Any]], extra_spaces: Iterable[tuple[str, list[dict[str, Any]]]] = ()
) -> str:
    """A little-endian machine: address space `memory` over container `system` holding
    ``subregions``; each extra ``(name, subregions)`` is one more address space whose root is
    the 4 GiB container `NAME-root`."""
    spaces = [{"name": "memory", "root": "system"}]
    regions: list[dict[str, Any]] = [
        {"name": "system", "kind": "container", "size": "2**64", "subregions": subregions}
    ]
    for name, subs in extra_spaces:
        spaces.append({"name": name, "root": f"{name}-root"})
        regions.append(
            {"name": f"{name}-root", "kind": "container", "size": 1 << 32, "subregions": subs}
        )
    return yaml.safe_dump(
        {"endianness": "little", "address_spaces": spaces, "regions": regions}, sort_keys=False
    )


def device_machine(regions: list[dict[str, Any]]) -> str:
    """The machine of the device tests: RAM_SIZE bytes of RAM at 0 and ``regions`` in address
    space `memory`, and address space DMA_SPACE that windows part of the RAM."""
    window = {
        "name": "dma-window",
        "kind": "alias",
        "target": "ram",
        "offset": DMA_OFFSET,
        "size": DMA_WINDOW,
    }
    ram = {"name": "ram", "kind": "ram", "addr": 0, "size": RAM_SIZE}
    return machine_yaml([ram, *regions], [(DMA_SPACE, [window])])
