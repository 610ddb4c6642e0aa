"""Errors raised by the memory model.

Every error carries the offending value so that the gRPC layer (and the command line) can say
exactly what was wrong. QEMU asserts on most of these; we raise instead.
"""

from __future__ import annotations


class MemoryModelError(Exception):
    """Base class of every error the memory model raises on a bad request."""


class InvalidArgumentError(MemoryModelError, ValueError):
    """An argument is out of range or of the wrong kind (a size above 2**64, a negative address)."""


class RegionInUseError(MemoryModelError):
    """The region is already mapped in a container (QEMU allows one container per region)."""


class NotMappedError(MemoryModelError):
    """The region is not a subregion of the container it was to be removed from."""


class CycleError(MemoryModelError):
    """The change would put a region inside itself. (Aliases may point anywhere, their own
    ancestors included: rendering cuts loops that would never end.)"""


class TransactionError(MemoryModelError):
    """A transaction was committed without having been begun."""


class AsyncOpsError(MemoryModelError):
    """A synchronous access reached MMIO ops that answer with a coroutine; use the async API."""


class NotFoundError(MemoryModelError, KeyError):
    """No region or address space has that id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AlreadyExistsError(MemoryModelError):
    """The id is taken."""


class InUseError(MemoryModelError):
    """The region cannot go: an address space or an alias still uses it."""


class RenderWorkError(MemoryModelError):
    """A transaction was refused because rendering its flat views would take more work than a
    commit may (RENDER-14). ``work`` is what it would have taken."""

    def __init__(self, message: str, work: int) -> None:
        super().__init__(message)
        self.work = work
