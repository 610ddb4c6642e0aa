"""Messages that carry a machine's own vocabulary: region specs (validated by the same schema as
description files) and regions named by their machine ids. The plain values (sizes, attributes,
byte order, kinds) convert in ``mmiobus.wire``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from mmiobus.machine import Machine
from mmiobus.machine.cpus import CpuSpec, LoadSpec
from mmiobus.machine.devicetree import device_tree, device_tree_addr
from mmiobus.machine.errors import format_path
from mmiobus.machine.problems import problem_message, problem_path
from mmiobus.machine.schema import InProcessDevice, MmioSpec, Region, RomdSpec
from mmiobus.memory.addrspace import AddressSpace
from mmiobus.memory.flatview import flatview_root
from mmiobus.memory.region import MemoryRegion
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import devices_pb2 as dpb
from mmiobus.wire import (
    access_spec_from_pb,
    endianness_from_pb,
    endianness_to_pb,
    flat_range_to_pb,
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


def region_to_pb(
    machine: Machine, mr: MemoryRegion, device: str = "", default_deadline_ms: float = 0
) -> pb.Region:
    """``mr`` as a Region message; ``device`` serves it now, ``default_deadline_ms`` is the
    server's answer deadline for regions whose description gives none."""
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
    declared = machine.declared.get(msg.id)
    spec = declared.spec if declared is not None else None
    if isinstance(spec, (MmioSpec, RomdSpec)) and spec.device is not None:
        if isinstance(spec.device, InProcessDevice):
            msg.declared_device = spec.device.name or msg.id
            msg.device_class = spec.device.class_
        else:
            msg.declared_device = spec.device
        msg.absent = spec.absent
        msg.deadline_ms = round(spec.deadline or default_deadline_ms)
    return msg


def cpu_to_pb(machine: Machine, cpu: CpuSpec) -> pb.Cpu:
    """What a CPU front-end needs to know of ``cpu`` (its device tree generated now)."""
    blob = device_tree(machine, cpu)

    def image(load: LoadSpec | None) -> str:
        if load is None or load.file is None:
            return ""
        return str((machine.base_dir / load.file).resolve())

    return pb.Cpu(
        name=cpu.name,
        arch=cpu.arch,
        board=cpu.board,
        address_space=cpu.address_space or machine.address_space().name,
        ram=cpu.ram,
        firmware_addr=cpu.firmware.addr,
        payload_addr=cpu.payload.addr if cpu.payload is not None else 0,
        fdt_addr=device_tree_addr(machine, cpu, blob),
        fdt=blob,
        board_devices=cpu.board_devices,
        interrupts=cpu.interrupts,
        timebase_hz=cpu.timebase,
        in_server=cpu.run == "server",
        firmware=image(cpu.firmware),
        payload=image(cpu.payload),
        devices=sorted(declared_devices(machine) - set(machine.cpus)),
    )


def declared_devices(machine: Machine) -> set[str]:
    """The names of the device processes the machine's regions say serve them."""
    return {
        d.spec.device
        for d in machine.declared.values()
        if isinstance(getattr(d.spec, "device", None), str)
    }


def flat_view_to_pb(machine: Machine, space: AddressSpace) -> list[pb.FlatRange]:
    """``space``'s flat view as it is now, in address order."""
    return [
        flat_range_to_pb(
            fr.start,
            fr.end - fr.start,
            machine.region_id(fr.mr),
            fr.offset,
            fr.readonly,
            fr.nonvolatile,
        )
        for fr in space.flatview.ranges
    ]


def topology_to_pb(
    machine: Machine,
    served: Mapping[MemoryRegion, str],
    flat_views: bool,
    default_deadline_ms: float = 0,
) -> pb.Topology:
    """The whole topology: every region (with the device serving it, from ``served``, and the
    server's ``default_deadline_ms`` for devices whose regions set none), every address space,
    and with ``flat_views`` their flat views."""
    out = pb.Topology(
        endianness=endianness_to_pb(machine.system.endianness),
        generation=machine.system.generation,
    )
    for mr in machine.regions.values():
        out.regions.append(region_to_pb(machine, mr, served.get(mr, ""), default_deadline_ms))
    for key, as_ in machine.spaces.items():
        fv_root = flatview_root(as_.root)
        space = out.address_spaces.add(
            id=key,
            name=as_.name,
            root=machine.region_id(as_.root),
            flatview_root=machine.region_id(fv_root) if fv_root is not None else "",
        )
        if flat_views:
            space.flat_view.extend(flat_view_to_pb(machine, as_))
    return out
