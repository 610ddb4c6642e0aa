"""A deliberately simple reference model of QEMU's memory semantics, for property tests.

It shares no code with ``mmiobus.memory``: regions are plain objects, every byte is resolved by
walking the tree (no rendering, no flat view, no binary search), flat ranges are the maximal runs
of bytes that resolve alike, and accesses follow the ACCESS, PIECE, VALID and IMPL rules of
docs/memory-rules.md one piece at a time. It is slow on purpose and only meant for small address spaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TWO64 = 1 << 64
MASK64 = TWO64 - 1
OK, ERROR, DECODE_ERROR, ACCESS_ERROR = 0, 1, 2, 4


@dataclass(eq=False)
class RefRegion:
    name: str
    kind: str  # container | ram | rom | romd | mmio | alias
    size: int
    addr: int = 0
    priority: int = 0
    seq: int = 0  # when it was (re)inserted into its container: newest wins ties
    enabled: bool = True
    readonly: bool = False
    nonvolatile: bool = False
    romd_mode: bool = True
    container: RefRegion | None = None
    children: list[RefRegion] = field(default_factory=list)
    alias: RefRegion | None = None
    alias_offset: int = 0
    data: bytearray | None = None
    ops: Any = None  # RefOps for mmio/romd with a device; None = unassigned
    unassigned_io: bool = False

    @property
    def terminates(self) -> bool:
        return self.kind not in ("container", "alias")

    @property
    def is_ram(self) -> bool:
        return self.kind in ("ram", "rom")


@dataclass
class RefOps:
    """What a test device is: constraints plus a deterministic value function."""

    valid_min: int = 0
    valid_max: int = 0
    valid_unaligned: bool = False
    impl_min: int = 0
    impl_max: int = 0
    impl_unaligned: bool = False
    big_endian: bool = False


def device_value(name: str, offset: int, size: int) -> int:
    """What the test devices answer to a read (both models use this)."""
    h = 0
    for ch in f"{name}:{offset}:{size}":
        h = (h * 131 + ord(ch)) & MASK64
    return h & ((1 << (8 * size)) - 1)


class RefSystem:
    def __init__(self) -> None:
        self._seq = 0
        self.calls: list[tuple[Any, ...]] = []

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- tree -------------------------------------------------------------------------------

    @staticmethod
    def contains(outer: RefRegion, inner: RefRegion) -> bool:
        """True if ``inner`` is ``outer`` or sits (transitively) inside it."""
        mr: RefRegion | None = inner
        while mr is not None:
            if mr is outer:
                return True
            mr = mr.container
        return False

    def add(self, parent: RefRegion, child: RefRegion, addr: int, priority: int) -> None:
        child.container = parent
        child.addr = addr
        child.priority = priority
        child.seq = self.next_seq()
        parent.children.append(child)

    def remove(self, child: RefRegion) -> None:
        assert child.container is not None
        child.container.children.remove(child)
        child.container = None

    def move(self, child: RefRegion, addr: int, priority: int) -> None:
        child.addr, child.priority = addr, priority
        if child.container is not None:
            child.seq = self.next_seq()

    # -- resolution -------------------------------------------------------------------------

    @staticmethod
    def flatview_root(mr: RefRegion | None) -> RefRegion | None:
        seen: list[RefRegion] = []
        while mr is not None and mr.enabled:
            if any(s is mr for s in seen):
                return mr
            seen.append(mr)
            if mr.alias is not None:
                if mr.alias_offset == 0 and mr.size >= mr.alias.size:
                    mr = mr.alias
                    continue
                return mr
            if not mr.terminates:
                enabled = [c for c in mr.children if c.enabled]
                if not enabled:
                    return None
                if len(enabled) == 1 and enabled[0].addr == 0 and mr.size >= enabled[0].size:
                    mr = enabled[0]
                    continue
            return mr
        return None

    def resolve_in(
        self,
        mr: RefRegion,
        a: int,
        addr: int,
        ro: bool = False,
        nv: bool = False,
        path: tuple[tuple[int, int], ...] = (),
    ) -> tuple[RefRegion, int, bool, bool] | None:
        """What byte ``addr`` of the address space is, given that it lies ``a`` bytes into
        ``mr``: walk the tree, highest precedence first. An alias entered again at the same
        place, or more than 32 times on one path, is a loop that resolves to nothing."""
        if not mr.enabled or not 0 <= a < mr.size:
            return None
        ro = ro or mr.readonly
        nv = nv or mr.nonvolatile
        if mr.alias is not None:
            key = (id(mr), addr - a)
            if key in path or sum(k[0] == id(mr) for k in path) >= 32:
                return None
            return self.resolve_in(mr.alias, a + mr.alias_offset, addr, ro, nv, (*path, key))
        for child in sorted(mr.children, key=lambda c: (-c.priority, -c.seq)):
            got = self.resolve_in(child, a - child.addr, addr, ro, nv, path)
            if got is not None:
                return got
        return (mr, a, ro, nv) if mr.terminates else None

    def resolve(self, root: RefRegion, addr: int) -> tuple[RefRegion, int, bool, bool] | None:
        fv_root = self.flatview_root(root)
        if fv_root is None:
            return None
        return self.resolve_in(fv_root, addr - fv_root.addr, addr)

    def flat_ranges(
        self, root: RefRegion, limit: int
    ) -> list[tuple[int, int, Any, int, bool, bool]]:
        """Maximal runs of bytes in [0, limit) that resolve to the same region, contiguously
        and with the same flags: exactly the ranges of a simplified QEMU flat view."""
        out: list[list[Any]] = []
        for a in range(limit):
            got = self.resolve(root, a)
            if got is None:
                continue
            mr, off, ro, nv = got
            if out:
                last = out[-1]
                if (
                    last[1] == a
                    and last[2] is mr
                    and last[3] + (last[1] - last[0]) == off
                    and last[4] == ro
                    and last[5] == nv
                ):
                    last[1] = a + 1
                    continue
            out.append([a, a + 1, mr, off, ro, nv])
        return [tuple(r) for r in out]  # type: ignore[misc]

    # -- accesses (docs/memory-rules.md: ACCESS, PIECE, VALID, IMPL) -----------------------

    def _translate(self, root: RefRegion, a: int, length: int) -> tuple[Any, int, int]:
        got = self.resolve(root, a)
        if got is None:
            return None, a, length
        mr, off, ro, nv = got
        if not mr.is_ram:
            return mr, off, length
        n = 1  # RAM is clamped to the end of its flat range
        while n < length and a + n < TWO64:
            nxt = self.resolve(root, a + n)
            if nxt is None or nxt[0] is not mr or nxt[1] != off + n or nxt[2:] != (ro, nv):
                break
            n += 1
        return mr, off, n

    @staticmethod
    def _piece(ops: RefOps | None, length: int, offset: int) -> int:
        limit = (ops.valid_max if ops else 0) or 4
        if not (ops and ops.impl_unaligned) and offset:
            low = offset & -offset
            limit = min(limit, low)
        n = min(length, limit)
        p = 1
        while p * 2 <= n:
            p *= 2
        return p

    @staticmethod
    def _valid(ops: RefOps | None, offset: int, size: int) -> bool:
        if ops is None:
            return False
        if not ops.valid_unaligned and offset % size:
            return False
        if ops.valid_max == 0:
            return True
        return ops.valid_min <= size <= ops.valid_max

    def _mmio_read(self, mr: RefRegion, offset: int, size: int) -> tuple[int, int]:
        ops = mr.ops
        if mr.unassigned_io and ops is None:
            return (1 << (8 * size)) - 1, OK
        if not self._valid(ops, offset, size):
            return 0, DECODE_ERROR
        unit = max(min(size, ops.impl_max or 4), ops.impl_min or 1)
        mask = (1 << (8 * unit)) - 1
        value = 0
        for i in range(0, size, unit):
            self.calls.append(("read", mr.name, offset + i, unit))
            t = device_value(mr.name, offset + i, unit) & mask
            shift = (size - unit - i) * 8 if ops.big_endian else i * 8
            value |= t << shift if shift >= 0 else t >> -shift
        return value, OK

    def _mmio_write(self, mr: RefRegion, offset: int, size: int, value: int) -> int:
        ops = mr.ops
        if mr.unassigned_io and ops is None:
            return OK
        if not self._valid(ops, offset, size):
            return DECODE_ERROR
        unit = max(min(size, ops.impl_max or 4), ops.impl_min or 1)
        mask = (1 << (8 * unit)) - 1
        for i in range(0, size, unit):
            shift = (size - unit - i) * 8 if ops.big_endian else i * 8
            t = (value >> shift) & mask if shift >= 0 else (value << -shift) & mask
            self.calls.append(("write", mr.name, offset + i, unit, t))
        return OK

    def read(self, root: RefRegion, addr: int, length: int) -> tuple[bytes, int]:
        buf = bytearray(length)
        pos, result = 0, OK
        while length:
            mr, off, n = self._translate(root, addr, length)
            if mr is not None and (
                mr.is_ram or (mr.kind == "romd" and mr.romd_mode and off < len(mr.data))
            ):
                n = min(n, len(mr.data) - off)
                buf[pos : pos + n] = mr.data[off : off + n]
            else:
                ops = mr.ops if mr is not None and mr.kind in ("mmio", "romd") else None
                n = self._piece(ops, n, off)
                if mr is None or mr.kind not in ("mmio", "romd"):
                    value, r = 0, DECODE_ERROR
                else:
                    value, r = self._mmio_read(mr, off, n)
                big = bool(ops and ops.big_endian)
                buf[pos : pos + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(
                    n, "big" if big else "little"
                )
                result |= r
            length -= n
            pos += n
            addr = (addr + n) & MASK64
        return bytes(buf), result

    def write(self, root: RefRegion, addr: int, data: bytes) -> int:
        length = len(data)
        pos, result = 0, OK
        while length:
            mr, off, n = self._translate(root, addr, length)
            if mr is not None and mr.kind == "ram" and not mr.readonly:
                mr.data[off : off + n] = data[pos : pos + n]
            else:
                ops = mr.ops if mr is not None and mr.kind in ("mmio", "romd") else None
                n = self._piece(ops, n, off)
                big = bool(ops and ops.big_endian)
                value = int.from_bytes(data[pos : pos + n], "big" if big else "little")
                if mr is None or mr.kind not in ("mmio", "romd"):
                    result |= DECODE_ERROR
                else:
                    result |= self._mmio_write(mr, off, n, value)
            length -= n
            pos += n
            addr = (addr + n) & MASK64
        return result
