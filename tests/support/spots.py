"""Blocks of address space handed out one per test, so that tests sharing a server never touch
each other's memory: the ``spot`` fixture takes them from its test module's ``SPOTS``."""

from __future__ import annotations


class Spots:
    """``next(spots)`` is the address of a block of ``size`` bytes that no earlier call gave
    out: ``start``, ``start + size``, ... It fails once a block would end past ``end``."""

    def __init__(self, start: int, size: int, end: int | None = None) -> None:
        self.next_addr, self.size, self.end = start, size, end

    def __iter__(self) -> Spots:
        return self

    def __next__(self) -> int:
        addr = self.next_addr
        if self.end is not None and addr + self.size > self.end:
            raise AssertionError(
                f"no room for another {self.size:#x}-byte spot below {self.end:#x}: "
                "give the tests more room or fewer spots"
            )
        self.next_addr += self.size
        return addr
