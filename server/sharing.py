"""RAM whose bytes other processes on this host map directly: a CPU front-end in its own process
runs guest code from the server's RAM, so that client writes and device DMA are what the guest
sees, and guest stores are what clients read.

A region is shared on first request: its bytes move into an anonymous memory file (memfd) that
the server keeps open, mapped shared, and the region's backing becomes that mapping. A process
on this host maps it through ``/proc/<server pid>/fd/<fd>``; the file's inode and device
numbers let it check that it opened the right file (a process on another host cannot). The
memory goes away with the server: nothing is left behind in the file system.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

from mmiobus.memory.region import MemoryRegion

from .errors import Conflict

_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)


@dataclass(frozen=True)
class SharedBacking:
    """Where a shared region's bytes are: a path this host can open, and its identity."""

    path: str
    size: int
    inode: int
    device: int
    mapping: mmap.mmap


class SharedRam:
    """The regions shared so far (see the module docstring)."""

    def __init__(self) -> None:
        self._shared: dict[MemoryRegion, tuple[int, SharedBacking]] = {}

    def is_shared(self, mr: MemoryRegion) -> bool:
        return mr in self._shared

    def share(self, mr: MemoryRegion, region_id: str) -> SharedBacking:
        """Share ``mr`` (once; later calls return the same backing)."""
        known = self._shared.get(mr)
        if known is not None:
            return known[1]
        if not mr.ram or mr.backing is None:
            raise Conflict(f"region {region_id!r} is {mr.kind.value}: only ram and rom regions "
                           "can be shared")  # fmt: skip
        size = mr.size
        if not 0 < size < 1 << 48:
            raise Conflict(f"region {region_id!r} has {size} bytes: nothing this size can be "
                           "shared")  # fmt: skip
        fd = os.memfd_create(f"mmiobus-{region_id}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            os.close(fd)
            raise
        _copy(mr.backing, mapping, size)
        mr.backing = mapping
        info = os.fstat(fd)
        backing = SharedBacking(f"/proc/{os.getpid()}/fd/{fd}", size, info.st_ino,
                                info.st_dev, mapping)  # fmt: skip
        self._shared[mr] = (fd, backing)
        return backing

    def close(self) -> None:
        """Close the files (the mappings stay valid as long as the regions use them)."""
        for fd, _backing in self._shared.values():
            os.close(fd)
        self._shared.clear()


def _copy(source: bytearray | mmap.mmap, target: mmap.mmap, size: int) -> None:
    """Copy ``size`` bytes, skipping all-zero chunks (the target starts zeroed, and reading an
    untouched anonymous mapping costs no memory while writing it would)."""
    for start in range(0, size, _CHUNK):
        chunk = source[start : start + _CHUNK]
        if chunk != _ZEROS[: len(chunk)]:
            target[start : start + len(chunk)] = chunk
