"""Backing stores: the bytes of RAM, ROM and ROM-device regions.

Small stores are bytearrays; large ones anonymous mappings whose pages the kernel commits only
when first written, so a 4 GiB RAM region costs nothing until the guest writes to it. A large
store is resized in place: neither copied nor touched (``MemoryRegion.set_size``).
"""

from __future__ import annotations

import mmap
import sys

from .errors import InvalidArgumentError

# MAP_NORESERVE lets such mappings exceed free memory.
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform.startswith("linux") else 0)

SMALL_BACKING = 1 << 20


def new_backing(size: int) -> bytearray | mmap.mmap:
    """Zero-filled backing store for a RAM/ROM/ROM-device region of ``size`` bytes: a bytearray
    up to 1 MiB (thousands of small regions must not each cost a kernel mapping), above that an
    anonymous mapping whose pages are committed only when first written."""
    if size <= SMALL_BACKING:
        return bytearray(size)
    try:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
    except (OSError, OverflowError, ValueError) as e:
        raise InvalidArgumentError(f"cannot back {size:#x} bytes of RAM: {e}") from None


def copied_backing(old: bytearray | mmap.mmap, old_size: int, size: int) -> bytearray | mmap.mmap:
    """A new backing store of ``size`` bytes holding the first ``old_size`` bytes of ``old``
    (for stores of at most ``SMALL_BACKING`` bytes on one side, so at most that is copied)."""
    new = new_backing(size)
    keep = min(size, old_size, len(old))
    if keep:
        new[:keep] = old[:keep]
    return new


def grow_mapping(backing: mmap.mmap, size: int) -> bool:
    """Make ``backing`` at least ``size`` bytes long in place (the kernel moves the pages, no
    byte is copied or touched); False if it cannot be (no ``mremap`` on this system, or
    buffers exported from it), and the caller copies instead."""
    if len(backing) >= size:
        return True
    try:
        backing.resize(size)
    except (OSError, SystemError, ValueError, TypeError, BufferError):
        return False
    return True


def settle_mapping(backing: bytearray | mmap.mmap, low: int, size: int) -> None:
    """After a commit: a mapping resized in place (``set_size``) holds ``size`` bytes whose
    part from ``low`` on must read zero (it grew in since being hidden, or never was), and
    nothing beyond ``size``. Zeroes that part without touching pages that were never written
    (``MADV_DONTNEED`` gives whole pages back as zeros) and releases the pages past ``size``."""
    if not isinstance(backing, mmap.mmap):
        return
    end = min(size, len(backing))
    if low < end:
        page = mmap.PAGESIZE
        first = -(-low // page) * page  # the first whole page
        last = end // page * page
        dontneed = getattr(mmap, "MADV_DONTNEED", None)
        if dontneed is not None and first < last:
            backing[low:first] = bytes(first - low)
            backing.madvise(dontneed, first, last - first)
            backing[last:end] = bytes(end - last)
        else:
            for at in range(low, end, SMALL_BACKING):
                n = min(SMALL_BACKING, end - at)
                backing[at : at + n] = bytes(n)
    if len(backing) > size:
        try:
            backing.resize(size)
        except (OSError, SystemError, ValueError, TypeError, BufferError):
            pass  # kept mapped; the bytes past ``size`` are never reached
