"""Register maps: named registers at offsets, with reset values and access rules, so that a
typical peripheral is a table plus a few side effects.

    regs = RegisterFile(
        Register("ctrl", 0x0, reset=0, on_write=self.ctrl_written),
        Register("status", 0x4, w1c=0x1),          # writing 1 clears bit 0
        Register("id", 0x8, reset=0x1234, access="ro"),
    )
    regs["status"] |= 1                           # the device's own updates skip the rules

Accesses may cover part of a register or several registers: each byte of the access is the
matching byte of the register that holds it (registers are little-endian inside, 0 where no
register is). Reads of write-only registers give 0; writes to read-only registers (or bits outside
``mask``) are ignored; bits in ``w1c`` are cleared by writing 1 and kept by writing 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Register:
    """One register. ``on_read`` may compute the value; ``on_write(old, new)`` sees each write
    after the rules were applied."""

    name: str
    offset: int
    size: int = 4
    reset: int = 0
    access: str = "rw"  # "rw", "ro" or "wo"
    mask: int | None = None  # writable bits (default: all)
    w1c: int = 0  # write-1-to-clear bits
    on_read: Callable[[], int] | None = None
    on_write: Callable[[int, int], None] | None = None
    value: int = field(init=False)

    def __post_init__(self) -> None:
        if self.access not in ("rw", "ro", "wo"):
            raise ValueError(f"register {self.name}: access must be rw, ro or wo")
        if self.size not in (1, 2, 4, 8):
            raise ValueError(f"register {self.name}: size must be 1, 2, 4 or 8")
        self.value = self.reset

    @property
    def end(self) -> int:
        return self.offset + self.size


class RegisterFile:
    """Registers by offset; ``read``/``write`` apply the access rules."""

    def __init__(self, *registers: Register) -> None:
        self.registers = sorted(registers, key=lambda r: r.offset)
        self.by_name = {r.name: r for r in self.registers}
        for a, b in zip(self.registers, self.registers[1:], strict=False):
            if a.end > b.offset:
                raise ValueError(f"registers {a.name} and {b.name} overlap")
        self._by_byte: dict[int, Register] = {}
        for r in self.registers:
            for i in range(r.offset, r.end):
                self._by_byte[i] = r

    def __getitem__(self, name: str) -> int:
        return self.by_name[name].value

    def __setitem__(self, name: str, value: int) -> None:
        reg = self.by_name[name]
        reg.value = value & ((1 << (8 * reg.size)) - 1)

    def reset(self) -> None:
        for r in self.registers:
            r.value = r.reset

    def _touched(self, offset: int, size: int) -> list[Register]:
        out: list[Register] = []
        for i in range(offset, offset + size):
            r = self._by_byte.get(i)
            if r is not None and (not out or out[-1] is not r):
                out.append(r)
        return out

    def read(self, offset: int, size: int) -> int:
        value = 0
        for r in self._touched(offset, size):
            current = 0 if r.access == "wo" else (r.on_read() if r.on_read else r.value)
            for i in range(max(offset, r.offset), min(offset + size, r.end)):
                byte = (current >> (8 * (i - r.offset))) & 0xFF
                value |= byte << (8 * (i - offset))
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        for r in self._touched(offset, size):
            if r.access == "ro":
                continue
            written, lanes = r.value, 0
            for i in range(max(offset, r.offset), min(offset + size, r.end)):
                shift = 8 * (i - r.offset)
                byte = (value >> (8 * (i - offset))) & 0xFF
                written = (written & ~(0xFF << shift)) | (byte << shift)
                lanes |= 0xFF << shift
            old = r.value
            writable = (r.mask if r.mask is not None else (1 << (8 * r.size)) - 1) & lanes
            new = (old & ~writable) | (written & writable)
            if r.w1c:
                cleared = written & r.w1c & lanes
                new = (new & ~r.w1c) | (old & r.w1c & ~cleared)
            r.value = new
            if r.on_write is not None:
                r.on_write(old, new)
