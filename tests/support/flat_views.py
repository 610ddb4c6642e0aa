"""Flat views from GetTopology as comparable tuples, and WatchTopology changes applied to them."""

from __future__ import annotations

from mmiobus.client import Bus
from mmiobus.v1 import bus_pb2 as pb


def flat_key(fr: pb.FlatRange) -> tuple:
    return (fr.start, fr.size, fr.region, fr.offset, fr.readonly, fr.nonvolatile)


def flat_view(bus: Bus, space: str) -> list[tuple]:
    """An address space's flat view from GetTopology, as comparable tuples."""
    topology = bus.topology(flat_views=True)
    for s in topology.address_spaces:
        if s.id == space:
            return [flat_key(fr) for fr in s.flat_view]
    raise AssertionError(f"no address space {space!r} in {[s.id for s in topology.address_spaces]}")


def served_by(bus: Bus, space: str, addr: int) -> tuple[str, int]:
    """(region id, offset in it) that GetTopology's flat view says serves ``addr``."""
    for start, size, region, offset, *_ in flat_view(bus, space):
        end = start + (size if size != (1 << 64) - 1 else 1 << 64)
        if start <= addr < end:
            return region, offset + addr - start
    return "", addr


def apply_changes(view: list[tuple], change: pb.TopologyChange) -> list[tuple]:
    """``view`` after the region_del and region_add changes of ``change``."""
    out = list(view)
    for c in change.changes:
        key = flat_key(c.range)
        if c.add:
            out.append(key)
        else:
            assert key in out, f"region_del of {key}, which is not in the view {out}"
            out.remove(key)
    return sorted(out)
