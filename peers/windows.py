"""Windows: bus regions served from ranges of a peer's own address space.

A window is claimed (``REGION[=TARGET]``: a region of the machine description, served from
TARGET in the peer, by default the region's own bus address) or registered (``ADDR:SIZE=
TARGET``: a new region of SIZE bytes at bus address ADDR). ``resolve`` fills in what the bus
knows (a claimed region's address and size) and refuses overlapping windows before anything
is attached, so a bad command line leaves the bus as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mmiobus.units import parse_size


class WindowError(ValueError):
    """A window cannot be served as asked; says which and why in one line."""


@dataclass(frozen=True)
class Window:
    """One bus region and where it lies in the peer. ``region`` is the region id (claimed)
    or None until the bus names a registered one; ``bus_addr``/``size`` are None for a claim
    until ``resolve``; ``target`` None means "the region's bus address"."""

    spec: str
    region: str | None
    bus_addr: int | None
    size: int | None
    target: int | None

    @property
    def claimed(self) -> bool:
        return self.region is not None

    @property
    def peer_range(self) -> tuple[int, int]:
        """[first, last] in the peer's address space (resolved windows only)."""
        assert self.target is not None and self.size is not None
        return self.target, self.target + self.size - 1

    def describe(self) -> str:
        first, last = self.peer_range
        what = self.region if self.region is not None else f"{self.bus_addr:#x}"
        return f"{what} ({first:#x}-{last:#x})"


def _int(text: str, what: str, spec: str) -> int:
    try:
        return parse_size(text.strip())
    except ValueError:
        raise WindowError(f"{spec!r}: {text!r} is not {what} (write 0x1000, 4K, ...)") from None


def parse_claim(spec: str) -> Window:
    """``REGION`` or ``REGION=TARGET``."""
    region, sep, target = spec.partition("=")
    if not region.strip():
        raise WindowError(f"{spec!r}: name the region to claim (REGION or REGION=ADDR)")
    addr = _int(target, "an address", spec) if sep else None
    return Window(spec, region.strip(), None, None, addr)


def parse_registration(spec: str, default_target: int | None = None) -> Window:
    """``ADDR:SIZE=TARGET``: a new region of SIZE bytes at bus address ADDR (``=TARGET`` may
    be left out when there is a ``default_target``)."""
    place, sep, target = spec.partition("=")
    addr_text, colon, size_text = place.partition(":")
    if not colon or not (sep or default_target is not None):
        raise WindowError(f"{spec!r}: write BUS_ADDR:SIZE=PEER_ADDR, e.g. 0x10003000:4K=0x9000000")
    if not sep:
        target = hex(default_target or 0)
    size = _int(size_text, "a size", spec)
    if size <= 0:
        raise WindowError(f"{spec!r}: the size must be at least 1 byte")
    return Window(
        spec, None, _int(addr_text, "an address", spec), size, _int(target, "an address", spec)
    )


def resolve(
    windows: list[Window], regions: dict[str, tuple[int, int]], peer: str = "the peer"
) -> list[Window]:
    """Fill in each claimed window's bus address and size from ``regions`` (id -> (absolute
    address, size), what the bus reports) and check that no two windows overlap in the peer
    and no region is claimed twice."""
    out: list[Window] = []
    seen: set[str] = set()
    for w in windows:
        if w.region is not None:
            if w.region in seen:
                raise WindowError(f"region {w.region!r} is claimed twice")
            seen.add(w.region)
            if w.region not in regions:
                known = ", ".join(sorted(regions)[:8]) or "none"
                raise WindowError(
                    f"the bus has no region {w.region!r} to claim (mmio regions: {known}; "
                    "`mmiobus regions` lists them)"
                )
            addr, size = regions[w.region]
            w = replace(w, bus_addr=addr, size=size, target=addr if w.target is None else w.target)
        out.append(w)
    for i, a in enumerate(out):
        for b in out[i + 1 :]:
            (a0, a1), (b0, b1) = a.peer_range, b.peer_range
            if a0 <= b1 and b0 <= a1:
                raise WindowError(f"windows {a.describe()} and {b.describe()} overlap in {peer}")
    return out


def check_inside(window: Window, covered: list[tuple[int, int]], peer: str) -> None:
    """Refuse ``window`` unless ``covered`` (sorted, merged [first, last] ranges the peer
    maps) holds all of it; the message names the first hole."""
    first, last = window.peer_range
    addr = first
    for lo, hi in covered:
        if hi < addr:
            continue
        if lo > addr:
            break
        addr = hi + 1
        if addr > last:
            return
    end = next((lo - 1 for lo, _ in covered if lo > addr), last)
    raise WindowError(
        f"window {window.describe()} is not all inside {peer}: nothing is mapped at "
        f"{addr:#x}-{min(end, last):#x}"
    )


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted ``ranges`` with touching and overlapping ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
