"""A register-file peripheral with every kind of ``RegisterFile`` rule (``Regs``), and the same
with ``async`` handlers (``AsyncRegs``): the device SDK tests run both in device processes and
inside the server."""

from __future__ import annotations

import asyncio
from typing import Any

from mmiobus.devices import Device, Register, RegisterFile

CTRL, ID, KEY, MASKED, FLAGS, BYTE, HALF, SHADOW, WRITES, WIDE, GAP, FAIL = (
    0x00,
    0x04,
    0x08,
    0x0C,
    0x10,
    0x14,
    0x16,
    0x18,
    0x1C,
    0x20,
    0x28,
    0x30,
)
RESETS = {
    "ctrl": 0x11223344,
    "id": 0xC0FFEE01,
    "key": 0x5A5A5A5A,
    "masked": 0x0000A00A,
    "flags": 0x000000F5,
    "byte": 0xA5,
    "half": 0xBEEF,
    "shadow": 0,
    "writes": 0,
    "wide": 0x0123456789ABCDEF,
}
MASKED_BITS = 0x0000FF0F  # writable bits of MASKED
FLAGS_W1C = 0xF0  # write-1-to-clear bits of FLAGS (the low nibble is plain read/write)
REGS_SIZE = 0x40


def register_file(owner: Any) -> RegisterFile:
    """The register map of ``Regs`` (a test may build one without a device)."""

    def key_written(old: int, new: int) -> None:
        owner.registers["shadow"] = new  # a side effect: SHADOW follows the write-only KEY

    def ctrl_written(old: int, new: int) -> None:
        owner.registers["writes"] = owner.registers["writes"] + 1

    return RegisterFile(
        Register("ctrl", CTRL, reset=RESETS["ctrl"], on_write=ctrl_written),
        Register("id", ID, reset=RESETS["id"], access="ro"),
        Register("key", KEY, reset=RESETS["key"], access="wo", on_write=key_written),
        Register("masked", MASKED, reset=RESETS["masked"], mask=MASKED_BITS),
        Register("flags", FLAGS, reset=RESETS["flags"], w1c=FLAGS_W1C),
        Register("byte", BYTE, size=1, reset=RESETS["byte"]),
        Register("half", HALF, size=2, reset=RESETS["half"]),
        Register("shadow", SHADOW, access="ro"),
        Register("writes", WRITES, access="ro"),
        Register("wide", WIDE, size=8, reset=RESETS["wide"]),
    )


class Regs(Device):
    """A peripheral made of a ``RegisterFile`` with every kind of rule, sync handlers.

    0x00 CTRL rw (each write counts in WRITES)   0x04 ID ro   0x08 KEY wo (copied to SHADOW)
    0x0c MASKED (MASKED_BITS writable)            0x10 FLAGS (FLAGS_W1C write-1-to-clear)
    0x14 BYTE (1 byte)  0x16 HALF (2 bytes)      0x18 SHADOW ro   0x1c WRITES ro
    0x20 WIDE (8 bytes)  0x28 nothing            0x30.. the handlers raise
    """

    size = REGS_SIZE

    def __init__(self) -> None:
        super().__init__()
        self.registers = register_file(self)

    def read(self, offset: int, size: int) -> Any:
        if offset + size > FAIL:
            raise RuntimeError(f"read of {size} at {offset:#x}: this handler always raises")
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> Any:
        if offset + size > FAIL:
            raise RuntimeError(f"write of {size} at {offset:#x}: this handler always raises")
        return super().write(offset, size, value)


class AsyncRegs(Regs):
    """``Regs`` with ``async`` handlers (each yields to the event loop before answering)."""

    async def read(self, offset: int, size: int) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)
        return Regs.read(self, offset, size)

    async def write(self, offset: int, size: int, value: int) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)
        return Regs.write(self, offset, size, value)

    async def reset(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        Regs.reset(self)
