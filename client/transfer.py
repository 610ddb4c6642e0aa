"""Transfers of any length: reads, writes and fills cut into accesses and batches within the
server's limits (``Info.limits``), issued in address order, reporting progress as they go.

A single ``read``/``write`` is one access, refused by the server above ``max_access_bytes``;
these functions move a 4 MB firmware image as a few batches of accesses of at most that size.
They stop at the first batch that faults and raise ``BusFault`` naming the access that did (the
accesses before it in its batch, and every batch before, have taken effect).

    with Bus() as bus:
        write_range(bus, 0x8000_0000, Path("fw.bin").read_bytes(), progress=bar.update)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.v1 import bus_pb2 as pb

from .core import Read, Write
from .errors import BusFault
from .sync import Bus

Progress = Callable[[int], object]
"""Called with the number of bytes each finished batch moved."""

# Bytes per batch: small enough that a progress bar moves often and a fault stops the transfer
# soon, large enough that a round trip per batch costs little next to the data.
STEP = 1 << 20
_TWO64 = 1 << 64


def pieces(addr: int, size: int, limits: pb.Limits) -> Iterator[list[tuple[int, int]]]:
    """``(addr, size)`` accesses covering ``size`` bytes from ``addr``, in batches: each access
    within ``max_access_bytes`` (and half of ``max_message_bytes``, so that a write fits in a
    message), each batch within ``max_batch_bytes``, ``max_batch_accesses`` and ``STEP``."""
    if not 0 <= addr < _TWO64 or size < 0:
        raise ValueError(f"address {addr!r} or size {size!r} out of range")
    if addr + size > _TWO64:
        raise ValueError(
            f"{size} bytes at {addr:#x} go past the end of the 64-bit address space "
            f"(the last address is 0xffffffffffffffff)"
        )
    step = min(limits.max_batch_bytes or STEP, STEP)
    access = min(limits.max_access_bytes or step, step, (limits.max_message_bytes or 2 * step) // 2)
    most = limits.max_batch_accesses or step
    end = addr + size
    while addr < end:
        batch: list[tuple[int, int]] = []
        taken = 0
        while addr < end and taken < step and len(batch) < most:
            n = min(access, end - addr, step - taken)
            batch.append((addr, n))
            addr += n
            taken += n
        yield batch


def _fault(
    addr: int, size: int, result: MemTxResult, is_write: bool, address_space: str | None
) -> BusFault:
    return BusFault(addr, size, result, is_write, address_space or "")


def read_range(
    bus: Bus,
    addr: int,
    size: int,
    *,
    address_space: str | None = None,
    attrs: MemTxAttrs | None = None,
    progress: Progress | None = None,
) -> bytes:
    """``size`` bytes from ``addr`` (``BusFault`` at the first access that faults)."""
    out = bytearray()
    for batch in pieces(addr, size, bus.info.limits):
        reads = [Read(a, n, address_space, attrs) for a, n in batch]
        for (a, n), got in zip(batch, bus.batch(reads, check=False), strict=True):
            if got.result:
                raise _fault(a, n, got.result, False, address_space)
            out += got.data
        if progress is not None:
            progress(sum(n for _a, n in batch))
    return bytes(out)


def write_range(
    bus: Bus,
    addr: int,
    data: bytes,
    *,
    address_space: str | None = None,
    attrs: MemTxAttrs | None = None,
    progress: Progress | None = None,
) -> None:
    """Write ``data`` from ``addr`` (``BusFault`` at the first access that faults)."""
    view = memoryview(data)
    for batch in pieces(addr, len(data), bus.info.limits):
        writes = [
            Write(a, bytes(view[a - addr : a - addr + n]), address_space, attrs) for a, n in batch
        ]
        for (a, n), result in zip(batch, bus.batch(writes, check=False), strict=True):
            if result:
                raise _fault(a, n, result, True, address_space)
        if progress is not None:
            progress(sum(n for _a, n in batch))


def fill_range(
    bus: Bus,
    addr: int,
    size: int,
    pattern: bytes,
    *,
    address_space: str | None = None,
    attrs: MemTxAttrs | None = None,
    progress: Progress | None = None,
) -> None:
    """Fill ``size`` bytes from ``addr`` with ``pattern`` repeated (the last copy cut short
    when ``size`` is not a multiple of its length); ``BusFault`` as ``write_range``."""
    if not pattern:
        raise ValueError("the fill pattern is empty")
    for batch in pieces(addr, size, bus.info.limits):
        writes = []
        for a, n in batch:
            start = (a - addr) % len(pattern)  # keep the pattern's phase across accesses
            copies = (start + n) // len(pattern) + 1
            writes.append(Write(a, (pattern * copies)[start : start + n], address_space, attrs))
        for (a, n), result in zip(batch, bus.batch(writes, check=False), strict=True):
            if result:
                raise _fault(a, n, result, True, address_space)
        if progress is not None:
            progress(sum(n for _a, n in batch))
