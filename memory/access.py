"""The vocabulary of an access: results, attributes, byte order and MMIO ops.

These are the values that cross the seam between the memory model and whatever serves MMIO
(an in-process Python object or a proxy for a remote device).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import InvalidArgumentError

TWO64 = 1 << 64
MASK64 = TWO64 - 1


class MemTxResult(enum.IntFlag):
    """QEMU's ``MemTxResult`` bits; pieces of one access are OR-combined."""

    OK = 0
    ERROR = 1
    DECODE_ERROR = 2
    ACCESS_ERROR = 4


MEMTX_OK = MemTxResult.OK
MEMTX_ERROR = MemTxResult.ERROR
MEMTX_DECODE_ERROR = MemTxResult.DECODE_ERROR
MEMTX_ACCESS_ERROR = MemTxResult.ACCESS_ERROR


class MemTxAttrs(NamedTuple):
    """Attributes of a bus transaction (QEMU's ``MemTxAttrs``), forwarded to every MMIO op.

    ``memory`` restricts the access to normal memory: anything that is not RAM answers
    ``MEMTX_ACCESS_ERROR`` without being touched, as in QEMU.
    """

    requester_id: int = 0
    secure: bool = False
    user: bool = False
    memory: bool = False


MEMTXATTRS_UNSPECIFIED = MemTxAttrs()


class Endianness(enum.Enum):
    """Byte order of a device's registers; ``NATIVE`` means the machine's own order."""

    NATIVE = "native"
    LITTLE = "little"
    BIG = "big"


@dataclass(frozen=True, slots=True)
class AccessConstraints:
    """Access sizes (in bytes) a device accepts (``valid``) or implements (``impl``).

    A size of 0 means "not set", exactly as in QEMU: ``valid.max_access_size == 0`` accepts
    every size (and then the minimum is ignored); ``impl`` defaults to 1..4 bytes.
    """

    min_access_size: int = 0
    max_access_size: int = 0
    unaligned: bool = False

    def __post_init__(self) -> None:
        for name in ("min_access_size", "max_access_size"):
            v = getattr(self, name)
            if v not in (0, 1, 2, 4, 8):
                raise InvalidArgumentError(f"{name} must be 0, 1, 2, 4 or 8, not {v!r}")
        if (
            self.min_access_size
            and self.max_access_size
            and (self.min_access_size > self.max_access_size)
        ):
            raise InvalidArgumentError(
                f"min_access_size {self.min_access_size} is larger than "
                f"max_access_size {self.max_access_size}"
            )


ReadFn = Callable[[int, int, MemTxAttrs], "int | tuple[int, int] | Awaitable[Any]"]
WriteFn = Callable[[int, int, int, MemTxAttrs], "int | Awaitable[Any] | None"]
AcceptsFn = Callable[[int, int, bool, MemTxAttrs], bool]


@dataclass(slots=True)
class MemoryRegionOps:
    """Callbacks of an MMIO or ROM-device region (QEMU's ``MemoryRegionOps``).

    ``read(offset, size, attrs)`` returns the value, or ``(value, MemTxResult)``;
    ``write(offset, size, value, attrs)`` returns ``None`` or a ``MemTxResult``. Either may be a
    coroutine function: dispatch then awaits it (see ``AddressSpace.dispatch_read``).
    ``accepts(offset, size, is_write, attrs)`` may veto an access (it then fails with
    ``MEMTX_DECODE_ERROR`` and no callback runs). ``owner`` identifies the device for the
    re-entrancy guard: an access into a region whose owner is already inside one of its own
    callbacks answers ``MEMTX_ACCESS_ERROR``.
    """

    read: ReadFn | None = None
    write: WriteFn | None = None
    endianness: Endianness = Endianness.NATIVE
    valid: AccessConstraints = field(default_factory=AccessConstraints)
    impl: AccessConstraints = field(default_factory=AccessConstraints)
    accepts: AcceptsFn | None = None
    owner: Any = None

    def __post_init__(self) -> None:
        if self.impl.unaligned and not self.valid.unaligned:
            raise InvalidArgumentError(
                "impl.unaligned requires valid.unaligned (a device cannot implement "
                "unaligned accesses it does not accept)"
            )


def _reject(offset: int, size: int, is_write: bool, attrs: MemTxAttrs) -> bool:
    return False


def _all_ones(offset: int, size: int, attrs: MemTxAttrs) -> int:
    return MASK64


def _ignore(offset: int, size: int, value: int, attrs: MemTxAttrs) -> None:
    return None


UNASSIGNED_MEM_OPS = MemoryRegionOps(accepts=_reject)
"""QEMU's ``unassigned_mem_ops``: every access fails with ``MEMTX_DECODE_ERROR``, reads 0."""

UNASSIGNED_IO_OPS = MemoryRegionOps(read=_all_ones, write=_ignore)
"""QEMU's ``unassigned_io_ops`` (PC I/O space): reads all-ones, writes ignored, ``MEMTX_OK``."""
