"""Translation between the wire messages (``mmiobus.v1``) and the memory model."""

from __future__ import annotations

from typing import Any

import pydantic
from mmiobus.machine import Machine
from mmiobus.machine.description import Region, problem_message, problem_path
from mmiobus.machine.errors import format_path
from mmiobus.memory.access import MASK64, TWO64, Endianness, MemTxAttrs
from mmiobus.memory.region import MemoryRegion, RegionKind
from mmiobus.v1 import bus_pb2 as pb

from .status import invalid

_REGION_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Region)

KIND_TO_PB = {
    RegionKind.CONTAINER: pb.CONTAINER,
    RegionKind.RAM: pb.RAM,
    RegionKind.ROM: pb.ROM,
    RegionKind.ROMD: pb.ROMD,
    RegionKind.MMIO: pb.MMIO,
    RegionKind.ALIAS: pb.ALIAS,
}
KIND_FROM_PB = {v: k.value for k, v in KIND_TO_PB.items()}
ENDIAN_TO_PB = {Endianness.NATIVE: pb.NATIVE, Endianness.LITTLE: pb.LITTLE, Endianness.BIG: pb.BIG}
ENDIAN_FROM_PB = {pb.NATIVE: "native", pb.LITTLE: "little", pb.BIG: "big"}


def size_to_pb(size: int) -> int:
    """2**64 travels as 0xffffffffffffffff (QEMU's convention; 2**64-1 is not a region size)."""
    return MASK64 if size >= TWO64 else size


def size_from_pb(size: int) -> int:
    return TWO64 if size == MASK64 else size


def attrs_from_pb(attrs: pb.Attrs, where: str = "request") -> MemTxAttrs:
    if attrs.requester_id > 0xFFFF:
        raise invalid(f"{where}.attrs.requester_id: {attrs.requester_id} does not fit in 16 bits")
    return MemTxAttrs(attrs.requester_id, attrs.secure, attrs.user, attrs.memory)


def _access_spec(spec: pb.AccessSpec) -> dict[str, Any]:
    return {"min": spec.min, "max": spec.max, "unaligned": spec.unaligned}


def region_spec_from_pb(op: pb.CreateRegion, where: str) -> Any:
    """A description entry (validated by the same schema as YAML files) for CreateRegion."""
    if not op.id:
        raise invalid(f"{where}.id: a region needs an id")
    kind = KIND_FROM_PB.get(op.kind)
    if kind is None:
        raise invalid(
            f"{where}.kind: set the region's kind (container, ram, rom, romd, mmio, alias)"
        )
    data: dict[str, Any] = {
        "name": op.name or op.id,
        "id": op.id,
        "kind": kind,
        "size": size_from_pb(op.size),
        "readonly": op.readonly,
        "nonvolatile": op.nonvolatile,
    }
    if kind == "alias":
        data["target"] = op.target
        data["offset"] = op.offset
    elif op.target or op.offset:
        raise invalid(f"{where}.target: only an alias has a target and offset")
    if kind in ("mmio", "romd"):
        data["valid"] = _access_spec(op.valid)
        data["impl"] = _access_spec(op.impl)
        data["endianness"] = ENDIAN_FROM_PB.get(op.endianness, "native")
    else:
        for field in ("valid", "impl"):
            if op.HasField(field):
                raise invalid(f"{where}.{field}: only mmio and romd regions have access sizes")
        if op.endianness:
            raise invalid(f"{where}.endianness: only mmio and romd regions have a byte order")
    if kind == "mmio":
        data["unassigned"] = "io" if op.unassigned == pb.UNASSIGNED_IO else "memory"
    elif op.unassigned:
        raise invalid(f"{where}.unassigned: only an mmio region has this")
    if op.contents and kind not in ("ram", "rom", "romd"):
        raise invalid(f"{where}.contents: only ram, rom and romd regions have contents")
    try:
        spec = _REGION_ADAPTER.validate_python(data)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        path = problem_path(err)
        if path and path[0] == kind:  # the discriminated union's tag
            path = path[1:]
        field = f".{format_path(path)}" if path else ""
        raise invalid(f"{where}{field}: {problem_message(err)}") from None
    if op.contents and len(op.contents) > spec.size:
        raise invalid(
            f"{where}.contents: {len(op.contents)} bytes, more than the region's {spec.size}"
        )
    return spec


def region_to_pb(machine: Machine, mr: MemoryRegion, device: str = "") -> pb.Region:
    msg = pb.Region(
        id=machine.region_id(mr),
        name=mr.name,
        kind=KIND_TO_PB[mr.kind],
        size=size_to_pb(mr.size),
        addr=mr.addr,
        priority=mr.priority,
        enabled=mr.enabled,
        container=machine.region_id(mr.container) if mr.container is not None else "",
        subregions=[machine.region_id(s) for s in mr.subregions],
        readonly=mr.readonly,
        nonvolatile=mr.nonvolatile,
        romd_mode=mr.romd_mode if mr.rom_device else False,
        device=device,
    )
    if mr.alias is not None:
        msg.target = machine.region_id(mr.alias)
        msg.offset = mr.alias_offset
    return msg
