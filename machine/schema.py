"""The machine-description format: pydantic models, one per region kind, and its JSON Schema.

A description lists address spaces and region trees::

    endianness: little
    address_spaces:
      - {name: memory, root: system}
    regions:
      - name: system
        kind: container
        size: 0x10000000000000000
        subregions:
          - {name: ram-below-4g, kind: alias, target: pc.ram, offset: 0, size: 0x20000000}
      - {name: pc.ram, kind: ram, size: 512 MiB}

``kind`` chooses the model of each region. Reading text into these models, with errors that
name the bad field, is ``mmiobus.machine.description``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .cpus import CpuSpec
from .fields import U64, AccessSize, DurationMs, Priority, Size, Strict

# -- models ----------------------------------------------------------------------------------


class AccessSpec(Strict):
    """Access sizes in bytes; 0 means unset (QEMU: valid.max 0 accepts any size; impl 1..4)."""

    min: AccessSize = 0
    max: AccessSize = 0
    unaligned: bool = False

    @model_validator(mode="after")
    def _order(self) -> AccessSpec:
        if self.min and self.max and self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self


class _RegionBase(Strict):
    """What every region kind has: names, place, flags and subregions."""

    name: str = Field(description="printed name; need not be unique")
    id: str | None = Field(None, description="unique id; defaults to the name")
    addr: U64 = Field(0, description="offset inside the parent (top level: the region's own addr)")
    priority: Priority = 0
    enabled: bool = True
    readonly: bool = Field(False, description="QEMU's readonly flag (flat ranges below print rom)")
    nonvolatile: bool = Field(False, description="QEMU's nonvolatile flag (printed nv-)")
    subregions: list[Region] = Field(
        default_factory=list, description="added in this order; later ones win ties"
    )

    @property
    def key(self) -> str:
        """The id the machine knows this region by: ``id``, else ``name``."""
        return self.id if self.id is not None else self.name


class ContainerSpec(_RegionBase):
    """Holds subregions; holes stay holes."""

    kind: Literal["container"]
    size: Size


class _BackedSpec(_RegionBase):
    size: Size
    file: str | None = Field(
        None, description="initial contents (path relative to this file), zero-padded"
    )


class RamSpec(_BackedSpec):
    """RAM: read and written directly."""

    kind: Literal["ram"]


class RomSpec(_BackedSpec):
    """ROM: read directly; writes fail with MEMTX_DECODE_ERROR."""

    kind: Literal["rom"]


class InProcessDevice(Strict):
    """A device model the server runs itself (the same class `mmiobus device run` runs)."""

    class_: str = Field(alias="class", description="MODULE:CLASS of an mmiobus.devices.Device")
    name: str | None = Field(None, description="device name; defaults to the region id")
    args: dict[str, Any] = Field(default_factory=dict, description="constructor arguments")

    @model_validator(mode="after")
    def _target(self) -> InProcessDevice:
        module, _, cls = self.class_.partition(":")
        if not module or not cls:
            raise ValueError(f"class {self.class_!r} is not MODULE:CLASS")
        return self


class _OpsSpec(Strict):
    """What regions served by a device have: access sizes, byte order and the device."""

    valid: AccessSpec = Field(default_factory=AccessSpec, description="sizes the device accepts")
    impl: AccessSpec = Field(default_factory=AccessSpec, description="sizes the device implements")
    endianness: Literal["native", "little", "big"] = "native"
    device: str | InProcessDevice | None = Field(
        None,
        description="the device that serves this region: the name of a device process that "
        "claims it, or a model the server runs ({class: MODULE:CLASS, args: {...}})",
    )
    absent: Literal["error", "unassigned", "ram"] = Field(
        "error",
        description="while its device is not attached: error = MEMTX_ERROR; unassigned = as if "
        "no device were declared; ram = reads and writes hit scratch memory",
    )
    deadline: DurationMs | None = Field(
        None, description="how long to wait for the device; default: the server's"
    )
    posted_writes: bool = Field(
        False, description="writes need no answer: the bus answers OK at once, keeping order"
    )

    @model_validator(mode="after")
    def _impl_unaligned(self) -> _OpsSpec:
        if self.impl.unaligned and not self.valid.unaligned:
            raise ValueError("impl.unaligned requires valid.unaligned")
        return self


class RomdSpec(_BackedSpec, _OpsSpec):
    """ROM device: reads from its contents in ROMD mode, writes go to its ops."""

    kind: Literal["romd"]
    romd_mode: bool = True


class MmioSpec(_RegionBase, _OpsSpec):
    """I/O region served by ops; with none it answers as `unassigned` says."""

    kind: Literal["mmio"]
    size: Size
    unassigned: Literal["memory", "io"] = Field(
        "memory",
        description="with no ops: memory = reads 0 and DECODE_ERROR; io = all-ones and OK",
    )


class AliasSpec(_RegionBase):
    """A window of `size` bytes onto `target`, starting `offset` bytes into it."""

    kind: Literal["alias"]
    target: str = Field(description="id of the target region")
    offset: U64 = 0
    size: Size


Region = Annotated[
    ContainerSpec | RamSpec | RomSpec | RomdSpec | MmioSpec | AliasSpec,
    Field(discriminator="kind"),
]
KINDS = ("container", "ram", "rom", "romd", "mmio", "alias")

for _cls in (ContainerSpec, RamSpec, RomSpec, RomdSpec, MmioSpec, AliasSpec):
    _cls.model_rebuild()


class AddressSpaceSpec(Strict):
    """An address space: a name and the id of its root region."""

    name: str = Field(description="printed name")
    id: str | None = Field(None, description="unique id; defaults to the name")
    root: str = Field(description="id of the root region")

    @property
    def key(self) -> str:
        """The id the machine knows this address space by: ``id``, else ``name``."""
        return self.id if self.id is not None else self.name


class MachineSpec(Strict):
    """A whole machine: its address spaces, region trees and CPUs."""

    endianness: Literal["little", "big"] = "little"
    address_spaces: list[AddressSpaceSpec] = Field(default_factory=list)
    regions: list[Region] = Field(
        default_factory=list,
        description="top-level regions: address-space roots and regions mapped nowhere",
    )
    cpus: list[CpuSpec] = Field(
        default_factory=list, description="CPUs whose front-ends run firmware on this machine"
    )


def json_schema() -> str:
    """The JSON Schema of the format, for editors (``mmiobus schema``)."""
    schema = MachineSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mmiobus machine description"
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"
