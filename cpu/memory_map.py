"""The engine's memory map: which guest pages are host memory and which call back into Python.

No overlaps, 4 KiB granularity:

* RAM and ROM: host memory mapped with ``mem_map_ptr`` (see :mod:`.memory`); never a callback.
  The guest's stores to ROM are discarded, as QEMU's TCG discards them (the engine steps over
  them).
* callbacks: board devices and bus windows (see :class:`~.engine.CpuEngine`), through
  :func:`~.mmio.map_mmio`.
* anything else is unmapped: the guest touching it is an error.

RAM, ROM and bus windows follow the bus's flat view: :meth:`MemoryMap.take` makes them what a
list of :class:`Mapping` says, leaving alone what stays the same. Board devices stay where they
were mapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from unicorn import Uc
from unicorn import unicorn_const as UC

from .memory import Ram, page_aligned
from .mmio import ReadFn, WriteFn, map_mmio

Key = tuple[int, int, str, str, int, int]


@dataclass(frozen=True, eq=False)
class Mapping:
    """RAM, ROM (*backing* from *offset* on; see :meth:`MemoryMap.add_ram`) or a bus window
    (*kind* ``"bus"``) at [base, base + size)."""

    base: int
    size: int
    name: str
    kind: str  # "ram", "rom" or "bus"
    backing: Any = None
    offset: int = 0

    @property
    def key(self) -> Key:
        """Equal for mappings that map the same thing (the same bytes by identity)."""
        return (self.base, self.size, self.name, self.kind, id(self.backing), self.offset)

    def __str__(self) -> str:
        return f"{self.kind} {self.name} {self.base:#x}-{self.base + self.size - 1:#x}"


class MemoryMap:
    """What ``uc`` maps where (see the module docstring)."""

    def __init__(self, uc: Uc) -> None:
        self.uc = uc
        self.rams: list[Ram] = []
        self.regions: list[tuple[int, int, str, str]] = []  # (base, size, name, kind)
        self._keep: dict[int, list[Any]] = {}  # base -> the callbacks Unicorn holds for it
        self._taken: dict[Key, Mapping] = {}  # what take() mapped

    def _claim(self, base: int, size: int, name: str, kind: str) -> None:
        if not (page_aligned(base) and page_aligned(size)):
            raise ValueError(f"{name}: {base:#x}+{size:#x} is not 4 KiB aligned")
        for b, s, n, _ in self.regions:
            if base < b + s and b < base + size:
                raise ValueError(f"{name} at {base:#x}+{size:#x} overlaps {n} at {b:#x}+{s:#x}")
        self.regions.append((base, size, name, kind))
        self.regions.sort()

    def add_ram(
        self,
        base: int,
        size: int,
        name: str = "ram",
        backing: Any = None,
        perms: int = UC.UC_PROT_ALL,
        offset: int = 0,
    ) -> Ram:
        """Map host memory at *base* (see :meth:`.memory.Ram.allocate` for *backing* and
        *offset*). Without ``UC_PROT_WRITE`` in *perms* the range is ROM."""
        ram = Ram.allocate(base, size, name, backing, offset)
        self._claim(base, size, name, "ram" if perms & UC.UC_PROT_WRITE else "rom")
        self.uc.mem_map_ptr(base, size, perms, ram.host_address)
        self.rams.append(ram)
        return ram

    def add_rom(
        self, base: int, size: int, name: str = "rom", backing: Any = None, offset: int = 0
    ) -> Ram:
        """``add_ram`` read-only (and executable)."""
        return self.add_ram(base, size, name, backing, UC.UC_PROT_READ | UC.UC_PROT_EXEC,
                            offset)  # fmt: skip

    def add_callbacks(
        self, base: int, size: int, name: str, kind: str, read: ReadFn, write: WriteFn
    ) -> None:
        """Serve [base, base + size) with *read(offset, size)* and *write(offset, size,
        value)*, offsets from *base* (*kind*: "device" or "bus")."""
        self._claim(base, size, name, kind)
        map_mmio(self.uc, base, size, read, write, self._keep.setdefault(base, []))

    def take(
        self, mappings: Iterable[Mapping], add_window: Callable[[int, int, str], None]
    ) -> tuple[list[Mapping], list[Mapping]]:
        """Make the RAM, ROM and bus windows what *mappings* say: those mapped already stay as
        they are, the others go; *add_window(base, size, name)* maps a bus window. Returns
        (unmapped, mapped). ``ValueError`` where one overlaps what stays mapped."""
        new = {m.key: m for m in mappings}
        gone = [m for key, m in self._taken.items() if key not in new]
        came = sorted((m for key, m in new.items() if key not in self._taken),
                      key=lambda m: m.base)  # fmt: skip
        for m in gone:
            self.uc.mem_unmap(m.base, m.size)
            self._keep.pop(m.base, None)  # Unicorn dropped its pointers to them
            self.regions.remove((m.base, m.size, m.name, m.kind))
            if m.kind != "bus":
                self.rams = [r for r in self.rams if r.base != m.base]
            del self._taken[m.key]
        for m in came:
            if m.kind == "bus":
                add_window(m.base, m.size, m.name)
            elif m.kind == "rom":
                self.add_rom(m.base, m.size, m.name, m.backing, m.offset)
            else:
                self.add_ram(m.base, m.size, m.name, m.backing, offset=m.offset)
            self._taken[m.key] = m
        return gone, came

    @property
    def taken(self) -> list[Mapping]:
        """The RAM, ROM and bus windows ``take`` mapped, by address."""
        return sorted(self._taken.values(), key=lambda m: m.base)

    def ram_at(self, addr: int, size: int = 1) -> Ram | None:
        for ram in self.rams:
            if ram.contains(addr, size):
                return ram
        return None

    def in_rom(self, addr: int) -> bool:
        return any(b <= addr < b + s and kind == "rom" for b, s, _n, kind in self.regions)
