"""Memory regions: the nodes of the tree that address spaces render into flat views.

A region is one of six kinds (QEMU constructor in brackets):

``container`` (``memory_region_init``)
    Holds subregions; its holes stay holes, so lower-priority siblings show through them.
``ram`` (``memory_region_init_ram``) / ``rom`` (``memory_region_init_rom``)
    Backed by bytes that accesses copy directly. Writes to ROM fail with ``MEMTX_DECODE_ERROR``.
``romd`` (``memory_region_init_rom_device``)
    Reads come from its bytes while in ROMD mode (the default); writes go to its ops.
``mmio`` (``memory_region_init_io``)
    Every access goes to its ops; with no ops it answers like unassigned memory (or, with
    ``unassigned="io"``, like the PC I/O space: all-ones, ``MEMTX_OK``).
``alias`` (``memory_region_init_alias``)
    A window of ``size`` bytes onto another region, starting ``alias_offset`` bytes into it.

Every mutator runs inside a transaction (its own, or the caller's) so the flat views are
re-rendered once, when the outermost transaction commits.
"""

from __future__ import annotations

import enum
import mmap
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from .access import (
    MASK64,
    TWO64,
    UNASSIGNED_IO_OPS,
    UNASSIGNED_MEM_OPS,
    MemoryRegionOps,
)
from .backing import SMALL_BACKING, copied_backing, grow_mapping, new_backing
from .errors import (
    CycleError,
    InvalidArgumentError,
    NotMappedError,
    RegionInUseError,
)

if TYPE_CHECKING:
    from .system import MemorySystem

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


class RegionKind(enum.Enum):
    """The six kinds of region (see the module docstring); fixed when the region is created."""

    CONTAINER = "container"
    RAM = "ram"
    ROM = "rom"
    ROMD = "romd"
    MMIO = "mmio"
    ALIAS = "alias"


class Unassigned(enum.Enum):
    """What an ``mmio`` region answers while no ops serve it."""

    MEMORY = "memory"  # QEMU's unassigned_mem_ops: reads 0, MEMTX_DECODE_ERROR
    IO = "io"  # QEMU's unassigned_io_ops: reads all-ones, writes ignored, MEMTX_OK


def qemu_size(size: int) -> int:
    """Apply QEMU's size rule (REGION-1): ``UINT64_MAX`` (2**64-1) means 2**64; every other
    size in 0..2**64 is stored as given. Anything else (negative, above 2**64, ``bool``, not an
    ``int``) raises ``InvalidArgumentError`` naming the value."""
    if not isinstance(size, int) or isinstance(size, bool):
        raise InvalidArgumentError(f"size must be an integer, not {size!r}")
    if size < 0 or size > TWO64:
        raise InvalidArgumentError(
            f"size {size:#x} is outside 0..2**64" if size >= 0 else f"size {size} is negative"
        )
    return TWO64 if size == MASK64 else size


def check_u64(what: str, value: int) -> int:
    """``value`` unchanged if it is a u64 (an ``int``, not a ``bool``, in 0..2**64-1), for an
    address or offset. 2**64 itself is refused: it is a size, not a place (sizes go through
    ``qemu_size``). Otherwise ``InvalidArgumentError``, whose message starts with ``what``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be an integer, not {value!r}")
    if not 0 <= value <= MASK64:
        raise InvalidArgumentError(
            f"{what} {value:#x} is outside 0..2**64-1"
            if value >= 0
            else f"{what} {value} is negative"
        )
    return value


def check_priority(priority: int) -> int:
    """``priority`` unchanged if it is a signed 32-bit ``int`` (-2**31..2**31-1, not a
    ``bool``), as QEMU stores it (REGION-4); otherwise ``InvalidArgumentError``."""
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidArgumentError(f"priority must be an integer, not {priority!r}")
    if not INT32_MIN <= priority <= INT32_MAX:
        raise InvalidArgumentError(f"priority {priority} is outside the signed 32-bit range")
    return priority


class MemoryRegion:
    """A node of the region tree (QEMU's ``MemoryRegion``); create through ``MemorySystem``."""

    __slots__ = (
        "__weakref__",
        "_subs",
        "addr",
        "alias",
        "alias_offset",
        "backing",
        "container",
        "enabled",
        "kind",
        "name",
        "nonvolatile",
        "ops",
        "priority",
        "ram",
        "readonly",
        "rom_device",
        "romd_mode",
        "size",
        "system",
        "terminates",
        "unassigned",
        "unmergeable",
    )

    def __init__(
        self,
        system: MemorySystem,
        name: str,
        size: int,
        kind: RegionKind,
        *,
        ops: MemoryRegionOps | None = None,
        alias: MemoryRegion | None = None,
        alias_offset: int = 0,
        data: bytes | None = None,
        unassigned: Unassigned = Unassigned.MEMORY,
    ) -> None:
        if not isinstance(name, str):
            raise InvalidArgumentError(f"region name must be a string, not {name!r}")
        self.system = system
        self.name = name
        self.kind = kind
        self.size = qemu_size(size)
        self.addr = 0
        self.priority = 0
        self.enabled = True
        self.readonly = kind is RegionKind.ROM
        self.nonvolatile = False
        self.unmergeable = False
        self.romd_mode = True
        self.ram = kind in (RegionKind.RAM, RegionKind.ROM)
        self.rom_device = kind is RegionKind.ROMD
        self.terminates = kind not in (RegionKind.CONTAINER, RegionKind.ALIAS)
        self.container: MemoryRegion | None = None
        # Subregions in *ascending* render precedence: lowest priority first, and among equal
        # priorities the oldest first. QEMU keeps the reverse; ours makes the common case (a new
        # region at the highest priority so far) an append.
        self._subs: list[MemoryRegion] = []
        self.alias: MemoryRegion | None = None
        self.alias_offset = 0
        unassigned = Unassigned(unassigned)  # also accepts "memory" / "io"
        self.unassigned = unassigned
        self.backing: bytearray | mmap.mmap | None = None
        if kind is RegionKind.ALIAS:
            if not isinstance(alias, MemoryRegion):
                raise InvalidArgumentError(f"alias {name!r} needs a target region")
            if alias.system is not system:
                raise InvalidArgumentError(f"alias {name!r} targets a region of another system")
            self.alias = alias
            self.alias_offset = check_u64("alias offset", alias_offset)
        elif alias is not None:
            raise InvalidArgumentError(f"only an alias has a target (region {name!r})")
        if kind in (RegionKind.RAM, RegionKind.ROM, RegionKind.ROMD):
            self.backing = new_backing(self.size)
            if data:
                if len(data) > self.size:
                    raise InvalidArgumentError(
                        f"initial contents of {name!r} ({len(data)} bytes) are larger than the "
                        f"region ({self.size} bytes)"
                    )
                self.backing[: len(data)] = data
        elif data is not None:
            raise InvalidArgumentError(f"only ram, rom and romd regions have contents ({name!r})")
        if ops is None:
            ops = UNASSIGNED_IO_OPS if unassigned is Unassigned.IO else UNASSIGNED_MEM_OPS
        elif kind not in (RegionKind.MMIO, RegionKind.ROMD):
            raise InvalidArgumentError(f"only mmio and romd regions have ops ({name!r})")
        self.ops = ops

    def __repr__(self) -> str:
        return f"<MemoryRegion {self.kind.value} {self.name!r} size={self.size:#x}>"

    # -- queries ------------------------------------------------------------------------------

    @property
    def subregions(self) -> list[MemoryRegion]:
        """Subregions in QEMU's list order: priority descending, newest first among equals."""
        return self._subs[::-1]

    def is_ancestor_of(self, other: MemoryRegion) -> bool:
        """True if ``other`` is (transitively) a subregion of this region."""
        mr = other.container
        while mr is not None:
            if mr is self:
                return True
            mr = mr.container
        return False

    # -- tree mutation ------------------------------------------------------------------------

    def add_subregion(self, offset: int, sub: MemoryRegion, priority: int = 0) -> None:
        """Map ``sub`` at ``offset`` inside this region with ``priority``.

        Higher priority wins where siblings overlap; among equal priorities the most recently
        added (or moved) wins (TREE-1). ``offset`` is a u64 (``InvalidArgumentError``
        otherwise); the part of ``sub`` beyond this region's end, or beyond 2**64, is clipped
        away when rendering, never wrapped (RENDER-6). ``priority`` is a signed 32-bit
        integer. ``sub`` must be a region of the same system and mapped nowhere else
        (``RegionInUseError``), and must not be this region or one of its ancestors
        (``CycleError``).
        """
        check_u64("offset", offset)
        check_priority(priority)
        self._check_can_contain(sub)
        with self.system.transaction():
            old = (sub.addr, sub.priority)
            sub.addr, sub.priority = offset, priority
            self._insert(sub)
            self.system._record(lambda: self._undo_add(sub, old))

    def del_subregion(self, sub: MemoryRegion) -> None:
        """Unmap ``sub`` from this region; it keeps its ``addr`` and ``priority`` (TREE-6).
        ``NotMappedError`` if ``sub`` is not mapped here."""
        if sub.container is not self:
            raise NotMappedError(f"{sub.name!r} is not a subregion of {self.name!r}")
        with self.system.transaction():
            index = self._remove(sub)
            self.system._record(lambda: self._undo_del(sub, index))

    def set_address(self, addr: int) -> None:
        """Move the region inside its container (``addr`` a u64). A move re-inserts it first
        among siblings of equal priority, so it then wins their overlaps (TREE-7, QEMU's
        ``memory_region_readd_subregion``). Without a container only ``addr`` changes and
        nothing is re-rendered.
        """
        check_u64("address", addr)
        if addr == self.addr:
            return
        self._readd(addr, self.priority)

    def set_priority(self, priority: int) -> None:
        """Change the priority; like a move, the region becomes the newest at that priority."""
        check_priority(priority)
        if priority == self.priority:
            return
        self._readd(self.addr, priority)

    def set_enabled(self, enabled: bool) -> None:
        """Enable or disable; a disabled region renders nothing and hides nothing."""
        enabled = bool(enabled)
        if enabled == self.enabled:
            return
        self._set_flag("enabled", enabled, dirty=True)

    def set_size(self, size: int) -> None:
        """Resize (REGION-2): ``UINT64_MAX`` means 2**64, sizes outside 0..2**64 raise
        ``InvalidArgumentError``. The same size does nothing; any other marks the topology
        dirty, even while the region is disabled or unmapped. Backed regions keep their bytes
        up to the smaller size; bytes that grow in are zero.

        A large backing store (a lazily committed mapping, ``new_backing``) is resized in
        place, neither copied nor touched: the bytes that grow in are zeroed, and the pages
        that shrink away released, when the outermost transaction commits (until then the
        old views show the old bytes, TXN-5); a rolled-back resize leaves every byte as it
        was."""
        size = qemu_size(size)
        if size == self.size:
            return
        with self.system.transaction():
            old_size, old_backing = self.size, self.backing
            if old_backing is not None:
                in_place = (
                    isinstance(old_backing, mmap.mmap)
                    and size > SMALL_BACKING
                    and grow_mapping(old_backing, size)
                )
                if in_place:
                    self.system._note_resized(self, min(old_size, size))
                else:
                    self.backing = copied_backing(old_backing, old_size, size)
            self.size = size
            self.system._mark_dirty()

            def undo() -> None:
                self.size, self.backing = old_size, old_backing

            self.system._record(undo)

    def set_alias_offset(self, offset: int) -> None:
        """Slide an alias's window over its target (``offset`` a u64; it may exceed the
        target's size, which leaves the window empty). ``InvalidArgumentError`` on a region
        that is not an alias (TREE-10)."""
        if self.alias is None:
            raise InvalidArgumentError(f"{self.name!r} is not an alias")
        check_u64("alias offset", offset)
        if offset == self.alias_offset:
            return
        self._set_flag("alias_offset", offset, dirty=self.enabled)

    def set_readonly(self, readonly: bool) -> None:
        """Mark read-only; on a RAM leaf this makes it a ROM, above it only flags the ranges."""
        readonly = bool(readonly)
        if readonly != self.readonly:
            self._set_flag("readonly", readonly, dirty=self.enabled)

    def set_nonvolatile(self, nonvolatile: bool) -> None:
        """Mark non-volatile (QEMU's ``memory_region_set_nonvolatile``). Accesses do not change;
        the flag is inherited by every flat range below the region (RENDER-8), printed as
        ``nv-`` by ``info mtree`` and part of a range's identity, so listeners see the ranges
        replaced (LISTENER-5). Any truthy value counts as True. An unchanged value does
        nothing; a change marks the topology dirty only while the region is enabled
        (TREE-9)."""
        nonvolatile = bool(nonvolatile)
        if nonvolatile != self.nonvolatile:
            self._set_flag("nonvolatile", nonvolatile, dirty=self.enabled)

    def set_unmergeable(self, unmergeable: bool) -> None:
        """Keep the flat ranges below the region from merging with their neighbours (QEMU's
        ``memory_region_set_unmergeable``; RENDER-8, RENDER-12). Accesses do not change; the
        flag is part of a range's identity for listeners. Any truthy value counts as True. An
        unchanged value does nothing; a change marks the topology dirty only while the region
        is enabled (TREE-9)."""
        unmergeable = bool(unmergeable)
        if unmergeable != self.unmergeable:
            self._set_flag("unmergeable", unmergeable, dirty=self.enabled)

    def set_romd(self, romd_mode: bool) -> None:
        """ROM device mode: reads come from memory (True) or from the ops (False) (ROM-3).
        ``InvalidArgumentError`` on a region that is not ``romd``."""
        if not self.rom_device:
            raise InvalidArgumentError(f"{self.name!r} is not a romd region")
        romd_mode = bool(romd_mode)
        if romd_mode != self.romd_mode:
            self._set_flag("romd_mode", romd_mode, dirty=self.enabled)

    def set_ops(self, ops: MemoryRegionOps | None) -> None:
        """Attach (or with ``None`` detach) the ops that serve an mmio or romd region.

        Not a topology change: accesses see the new ops at once.
        """
        if self.kind not in (RegionKind.MMIO, RegionKind.ROMD):
            raise InvalidArgumentError(f"only mmio and romd regions have ops ({self.name!r})")
        if ops is None:
            ops = UNASSIGNED_IO_OPS if self.unassigned is Unassigned.IO else UNASSIGNED_MEM_OPS
        self.ops = ops

    # -- internals ----------------------------------------------------------------------------

    def _check_can_contain(self, sub: MemoryRegion) -> None:
        if not isinstance(sub, MemoryRegion):
            raise InvalidArgumentError(f"expected a MemoryRegion, not {sub!r}")
        if sub.system is not self.system:
            raise InvalidArgumentError(f"{sub.name!r} belongs to another memory system")
        if sub.container is not None:
            raise RegionInUseError(
                f"{sub.name!r} is already mapped in {sub.container.name!r}; "
                "a region has one container (map it elsewhere through an alias)"
            )
        if sub is self or sub.is_ancestor_of(self):
            raise CycleError(
                f"mapping {sub.name!r} inside {self.name!r} would put a region inside itself"
            )

    def _insert(self, sub: MemoryRegion) -> None:
        subs = self._subs
        i = bisect_right(subs, sub.priority, key=_priority)
        subs.insert(i, sub)
        sub.container = self
        if self.enabled and sub.enabled:
            self.system._mark_dirty()

    def _remove(self, sub: MemoryRegion) -> int:
        subs = self._subs
        for i in range(len(subs) - 1, -1, -1):
            if subs[i] is sub:
                del subs[i]
                break
        sub.container = None
        if self.enabled and sub.enabled:
            self.system._mark_dirty()
        return i

    def _readd(self, addr: int, priority: int) -> None:
        container = self.container
        with self.system.transaction():
            old = (self.addr, self.priority)
            if container is None:
                # As in QEMU, only the field changes: nothing is marked dirty, so a view
                # rendered from this region keeps the old address until the next re-render.
                self.addr, self.priority = addr, priority
                self.system._record(lambda: _restore_place(self, old))
                return
            index = container._remove(self)
            self.addr, self.priority = addr, priority
            container._insert(self)

            def undo() -> None:
                container._remove(self)
                self.addr, self.priority = old
                container._subs.insert(index, self)
                self.container = container
                self.system._mark_dirty()

            self.system._record(undo)

    def _set_flag(self, attr: str, value: Any, *, dirty: bool) -> None:
        with self.system.transaction():
            old = getattr(self, attr)
            setattr(self, attr, value)
            if dirty:
                self.system._mark_dirty()

            def undo() -> None:
                setattr(self, attr, old)
                self.system._mark_dirty()

            self.system._record(undo)

    def _undo_add(self, sub: MemoryRegion, old: tuple[int, int]) -> None:
        self._remove(sub)
        sub.addr, sub.priority = old
        self.system._mark_dirty()

    def _undo_del(self, sub: MemoryRegion, index: int) -> None:
        self._subs.insert(index, sub)
        sub.container = self
        self.system._mark_dirty()


def _priority(mr: MemoryRegion) -> int:
    return mr.priority


def _restore_place(mr: MemoryRegion, old: tuple[int, int]) -> None:
    mr.addr, mr.priority = old
