"""The RAM budget: how many bytes of RAM, ROM and ROM-device memory peers may create while the
server runs (``serve --max-ram-bytes``), whatever their requests look like.

A region's charge is what it holds beyond its size when the server started: all of it for a
region created since. Resizing changes the charge, deleting a region gives it back. Charges are
made inside the memory system's transaction and undone with it, so a transaction that is
refused or fails leaves the budget as it was.
"""

from __future__ import annotations

import weakref

from mmiobus.machine import Machine
from mmiobus.memory.region import MemoryRegion

from .errors import LimitExceeded


class RamBudget:
    """Charges of backed regions against ``limit`` bytes (see the module docstring)."""

    def __init__(self, machine: Machine, limit: int) -> None:
        self.machine = machine
        self.limit = limit
        self.used = 0
        # What each backed region the server started with may hold without a charge (weakly:
        # a region deleted since must not be kept alive here).
        self._base: weakref.WeakKeyDictionary[MemoryRegion, int] = weakref.WeakKeyDictionary(
            (mr, mr.size) for mr in machine.regions.values() if mr.backing is not None
        )
        self._charged: dict[MemoryRegion, int] = {}

    def check(self, mr: MemoryRegion | None, size: int, where: str) -> None:
        """Refuse (``LimitExceeded`` naming ``where`` and ``--max-ram-bytes``) if backing
        ``size`` bytes for ``mr`` (None: a region about to be created) would exceed the
        budget. Call it before the memory is allocated."""
        base = self._base.get(mr, 0) if mr is not None else 0
        now = self._charged.get(mr, 0) if mr is not None else 0
        need = max(0, size - base) - now
        if need > 0 and self.used + need > self.limit:
            raise LimitExceeded(
                f"{where}: {size} bytes of memory would exceed the limit of {self.limit} bytes "
                f"created while the server runs (--max-ram-bytes; {self.used} in use)"
            )

    def charge(self, mr: MemoryRegion) -> None:
        """``mr`` now holds ``mr.size`` bytes (0 once deleted: ``release``); in the open
        transaction, undone with it."""
        self._set(mr, max(0, mr.size - self._base.get(mr, 0)))

    def release(self, mr: MemoryRegion) -> None:
        """``mr`` was deleted: its bytes no longer count."""
        self._set(mr, 0)

    def _set(self, mr: MemoryRegion, charge: int) -> None:
        old = self._charged.get(mr, 0)
        if charge == old:
            return
        self._apply(mr, charge)
        self.machine.system._record(lambda: self._apply(mr, old))

    def _apply(self, mr: MemoryRegion, charge: int) -> None:
        self.used += charge - self._charged.get(mr, 0)
        if charge:
            self._charged[mr] = charge
        else:
            self._charged.pop(mr, None)
