"""Host memory for guest RAM, and address-range arithmetic for the memory map.

Guest RAM is host memory Unicorn maps with ``mem_map_ptr``: by default an
anonymous *shared* ``mmap`` (inherited by forked children), or any mmap the
caller passes -- e.g. one of a file in /dev/shm that another process maps too,
or the server's own RAM backing. The same bytes are then seen by the CPU, by
Python (``Ram.view``) and by whoever else maps them.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterable
from dataclasses import dataclass, field

PAGE = 0x1000


def page_aligned(value: int) -> bool:
    return value % PAGE == 0


@dataclass
class Ram:
    """A RAM (or ROM image) region backed by host memory."""

    base: int
    size: int
    name: str
    backing: mmap.mmap
    _anchor: object = field(default=None, repr=False)  # keeps the ctypes view alive
    offset: int = 0  # where base falls in backing

    @classmethod
    def allocate(
        cls, base: int, size: int, name: str, backing: mmap.mmap | None = None, offset: int = 0
    ) -> Ram:
        """Make a region at *base* of *size* bytes from *backing* (an mmap) starting *offset*
        bytes into it, or from a new anonymous shared mapping. Base, size and offset must be
        page multiples."""
        if not (page_aligned(base) and page_aligned(size)) or size <= 0:
            raise ValueError(
                f"RAM {name}: base {base:#x} and size {size:#x} must be 4 KiB multiples"
            )
        if backing is None:
            backing = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        if not page_aligned(offset) or len(backing) < offset + size:
            raise ValueError(
                f"RAM {name}: {size:#x} bytes at {offset:#x} do not fit in a "
                f"backing of {len(backing):#x} bytes (or are not page aligned)"
            )
        anchor = (ctypes.c_char * size).from_buffer(backing, offset)
        return cls(base, size, name, backing, anchor, offset)

    @property
    def host_address(self) -> int:
        """Address of the first byte in this process (what ``mem_map_ptr`` gets)."""
        return ctypes.addressof(self._anchor)  # type: ignore[arg-type]

    def contains(self, addr: int, size: int = 1) -> bool:
        return self.base <= addr and addr + size <= self.base + self.size

    def write(self, addr: int, data: bytes) -> None:
        """Store *data* at guest address *addr* (must lie inside the region)."""
        if not self.contains(addr, len(data)):
            raise ValueError(f"{len(data)} bytes at {addr:#x} do not fit in {self.name}")
        off = self.offset + addr - self.base
        self.backing[off : off + len(data)] = data

    def read(self, addr: int, size: int) -> bytes:
        if not self.contains(addr, size):
            raise ValueError(f"{size} bytes at {addr:#x} are not inside {self.name}")
        off = self.offset + addr - self.base
        return self.backing[off : off + size]

    def view(self) -> memoryview:
        return memoryview(self.backing)[self.offset : self.offset + self.size]


def subtract(base: int, size: int, holes: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [base, base + size) not covered by any (hole_base, hole_size), in order."""
    parts = [(base, base + size)]
    for hb, hs in holes:
        he = hb + hs
        nxt = []
        for s, e in parts:
            if he <= s or hb >= e:
                nxt.append((s, e))
                continue
            if s < hb:
                nxt.append((s, hb))
            if he < e:
                nxt.append((he, e))
        parts = nxt
    return [(s, e - s) for s, e in parts if e > s]
