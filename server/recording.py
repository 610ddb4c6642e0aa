"""Turning recorded accesses into trace events: the region that served an access, its kind and
the address space's id are looked up only when some subscriber may want the event."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmiobus.memory.region import MemoryRegion, RegionKind

from .trace import AccessRecord, Event

if TYPE_CHECKING:
    from mmiobus.machine import Machine
    from mmiobus.memory.addrspace import AddressSpace
    from mmiobus.memory.flatview import FlatView

_KINDS = {
    RegionKind.RAM: "ram",
    RegionKind.ROM: "rom",
    RegionKind.ROMD: "romd",
    RegionKind.MMIO: "mmio",
    RegionKind.CONTAINER: "unassigned",
    RegionKind.ALIAS: "unassigned",
}
# Builds a NamedTuple without calling its Python-level __new__ (trace events are many).
_new_tuple = tuple.__new__
_REGION_CACHE = 4096  # regions come and go: do not hoard them


class Describer:
    """Names what a machine's accesses touched, for trace events."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        # region -> (its id, its kind): looked up once, not per event
        self._regions: dict[MemoryRegion, tuple[str, str]] = {}
        self.space_ids: dict[int, str] = {}
        self.refresh()

    def refresh(self) -> None:
        """Address spaces changed: learn their ids again."""
        self.space_ids = {id(as_): key for key, as_ in self.machine.spaces.items()}

    def space_id(self, space: AddressSpace) -> str:
        return self.space_ids.get(id(space), space.name)

    def describe(self, record: AccessRecord, seq: int) -> Event:
        """The trace event of a recorded access."""
        space, view, addr, size, is_write, data, result, initiator, rid, latency, ts = record
        return self.event(
            seq, ts, space, view, addr, size, is_write, data, result, initiator, rid, latency
        )

    def event(
        self,
        seq: int,
        ts: int,
        space: AddressSpace,
        view: FlatView,
        addr: int,
        size: int,
        is_write: bool,
        data: bytes,
        result: int,
        initiator: str,
        rid: int,
        latency: int,
    ) -> Event:
        """A trace event for an access to ``addr`` issued against ``view`` (the flat view it
        was dispatched in: its ops may have changed the topology since)."""
        fr = view.lookup(addr)
        if fr is None:
            region, offset, kind = "", addr, "unassigned"
        else:
            mr = fr.mr
            named = self._regions.get(mr)
            if named is None:
                if len(self._regions) > _REGION_CACHE:
                    self._regions.clear()
                named = self._regions[mr] = (
                    self.machine.region_ids.get(mr, mr.name),
                    _KINDS.get(mr.kind, "mmio"),
                )
            region, kind = named
            offset = fr.offset + (addr - fr.start)
            if kind == "ram" and mr.readonly:
                kind = "rom"
        return _new_tuple(  # type: ignore[no-any-return]
            Event,
            (
                seq,
                ts,
                self.space_ids.get(id(space), space.name),
                addr,
                size,
                is_write,
                data,
                int(result),
                region,
                offset,
                kind,
                initiator,
                rid,
                latency,
            ),
        )
