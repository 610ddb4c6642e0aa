"""Messages that carry a machine's own vocabulary: region specs (validated by the same schema as
description files) and regions named by their machine ids. The plain values (sizes, attributes,
byte order, kinds) convert in ``mmiobus.wire``."""

from __future__ import annotations

from typing import Any

import pydantic
from mmiobus.machine import Machine
from mmiobus.machine.errors import format_path
from mmiobus.machine.problems import problem_message, problem_path
from mmiobus.machine.schema import MmioSpec, Region
from mmiobus.memory.region import MemoryRegion
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import devices_pb2 as dpb
from mmiobus.wire import (
    access_spec_from_pb,
    endianness_from_pb,
    kind_from_pb,
    kind_to_pb,
    size_from_pb,
    size_to_pb,
    unassigned_from_pb,
)

from ..errors import InvalidRequest

_REGION_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Region)


def _validated(adapter: Any, data: dict[str, Any], kind: str, where: str) -> Any:
    try:
        return adapter.validate_python(data)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        path = problem_path(err)
        if path and path[0] == kind:  # the discriminated union's tag
            path = path[1:]
        field = f".{format_path(path)}" if path else ""
        raise InvalidRequest(f"{where}{field}: {problem_message(err)}") from None


def region_spec_from_pb(op: pb.CreateRegion, where: str) -> Any:
    """A description entry (validated by the same schema as YAML files) for CreateRegion."""
    if not op.id:
        raise InvalidRequest(f"{where}.id: a region needs an id")
    region_kind = kind_from_pb(op.kind)
    if region_kind is None:
        raise InvalidRequest(
            f"{where}.kind: set the region's kind (container, ram, rom, romd, mmio, alias)"
        )
    kind = region_kind.value
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
        raise InvalidRequest(f"{where}.target: only an alias has a target and offset")
    if kind in ("mmio", "romd"):
        data["valid"] = access_spec_from_pb(op.valid)
        data["impl"] = access_spec_from_pb(op.impl)
        data["endianness"] = endianness_from_pb(op.endianness).value
    else:
        for field in ("valid", "impl"):
            if op.HasField(field):
                raise InvalidRequest(
                    f"{where}.{field}: only mmio and romd regions have access sizes"
                )
        if op.endianness:
            raise InvalidRequest(
                f"{where}.endianness: only mmio and romd regions have a byte order"
            )
    if kind == "mmio":
        data["unassigned"] = unassigned_from_pb(op.unassigned).value
    elif op.unassigned:
        raise InvalidRequest(f"{where}.unassigned: only an mmio region has this")
    if op.contents and kind not in ("ram", "rom", "romd"):
        raise InvalidRequest(f"{where}.contents: only ram, rom and romd regions have contents")
    spec = _validated(_REGION_ADAPTER, data, kind, where)
    if op.contents and len(op.contents) > spec.size:
        raise InvalidRequest(
            f"{where}.contents: {len(op.contents)} bytes, more than the region's {spec.size}"
        )
    return spec


def registered_region_spec(r: dpb.RegisterRegion, region_id: str, device: str) -> MmioSpec:
    """The description entry of a region a device registers (the same schema as files)."""
    data: dict[str, Any] = {
        "name": r.name or region_id,
        "id": region_id,
        "kind": "mmio",
        "size": size_from_pb(r.size),
        "valid": access_spec_from_pb(r.valid),
        "impl": access_spec_from_pb(r.impl),
        "endianness": endianness_from_pb(r.endianness).value,
        "posted_writes": r.posted_writes,
        "device": device,
    }
    if r.deadline_ms:
        data["deadline"] = r.deadline_ms
    try:
        return MmioSpec.model_validate(data)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        raise InvalidRequest(
            f"register.{format_path(problem_path(err))}: {problem_message(err)}"
        ) from None


def region_to_pb(machine: Machine, mr: MemoryRegion, device: str = "") -> pb.Region:
    msg = pb.Region(
        id=machine.region_id(mr),
        name=mr.name,
        kind=kind_to_pb(mr.kind),
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
