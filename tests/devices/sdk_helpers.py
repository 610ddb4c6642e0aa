"""Device classes and harness helpers for the device tests.

The classes run both in device processes (``mmiobus device run sdk_helpers:CLASS`` with this
folder on ``PYTHONPATH``) and inside the server (``device: {class: sdk_helpers:CLASS}`` with the
same ``PYTHONPATH`` given to the server), so a test can compare the two modes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mmiobus.devices import Device, Register, RegisterFile
from mmiobus.memory.access import MemTxAttrs

# -- a register-file peripheral ---------------------------------------------------------------

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


# -- interrupt lines on demand ------------------------------------------------------------------

LINES = ("irq", "tx", "rx", "err")
PULSE = 0x80  # a write at PULSE + 8 * i pulses line i
STORM = 0xF0  # a write of N here pulses line "storm" N times in the background, yielding between


class IrqLines(Device):
    """Interrupt lines driven by writes: offset 8*i sets line LINES[i] to (value != 0),
    PULSE + 8*i pulses it, STORM starts a storm of pulses; a read at 8*i gives the device's idea
    of its level."""

    size = 0x100

    def read(self, offset: int, size: int) -> int:
        return int(self.irq(LINES[offset // 8 % len(LINES)]).level)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == STORM:
            self.spawn(self._storm(value))
            return
        line = self.irq(LINES[offset // 8 % len(LINES)])
        if offset >= PULSE:
            line.pulse()
        else:
            line.set(bool(value))

    async def _storm(self, count: int) -> None:
        for _ in range(count):
            self.irq("storm").pulse()
            await asyncio.sleep(0)


# -- a bus master --------------------------------------------------------------------------

M_ADDR, M_DATA, M_LEN, M_CMD = 0x00, 0x08, 0x10, 0x14
M_RESULT, M_COUNT, M_ATTRS, M_SPACE = 0x18, 0x1C, 0x20, 0x24
CMD_WRITE, CMD_READ = 1, 2


class Master(Device):
    """Makes DMA accesses on command (inside the CMD write, before answering it).

    0x00 ADDR (8 bytes)  0x08 DATA (8 bytes)  0x10 LEN (1..8)
    0x14 CMD: 1 = write LEN bytes of DATA (little-endian) at ADDR, 2 = read LEN bytes at ADDR
              into DATA
    0x18 RESULT: MemTxResult of the last DMA   0x1c COUNT: DMA accesses made
    0x20 ATTRS: when not 0, the DMA carries attributes of the device's own making with this
                requester id (the bus is to stamp the device's requester id over it)
    0x24 SPACE: 0 = the first address space, N = ``spaces[N - 1]``

    ``requester_id`` is the one the device announces to the bus.
    """

    size = 0x28

    def __init__(self, requester_id: int = 0, spaces: list[str] | None = None) -> None:
        super().__init__()
        self.requester_id = int(requester_id)
        self.spaces = ["", *(spaces or [])]
        self.registers = RegisterFile(
            Register("addr", M_ADDR, size=8),
            Register("data", M_DATA, size=8),
            Register("len", M_LEN, reset=8),
            Register("cmd", M_CMD),
            Register("result", M_RESULT, access="ro"),
            Register("count", M_COUNT, access="ro"),
            Register("attrs", M_ATTRS),
            Register("space", M_SPACE),
        )

    async def write(self, offset: int, size: int, value: int) -> None:  # type: ignore[override]
        r = self.registers
        assert r is not None
        r.write(offset, size, value)
        if offset != M_CMD or value not in (CMD_WRITE, CMD_READ):
            return
        n = max(1, min(8, r["len"]))
        attrs = MemTxAttrs(requester_id=r["attrs"]) if r["attrs"] else None
        space = self.spaces[r["space"] % len(self.spaces)]
        r["count"] = r["count"] + 1
        if value == CMD_WRITE:
            data = r["data"].to_bytes(8, "little")[:n]
            result = await self.dma_write(
                r["addr"], data, address_space=space, attrs=attrs, check=False
            )
        else:
            got = await self.dma_read(r["addr"], n, address_space=space, attrs=attrs, check=False)
            r["data"] = int.from_bytes(got.data, "little")
            result = got.result
        r["result"] = int(result)


# -- a target that remembers who wrote to it ---------------------------------------------------

R_VALUE, R_REQUESTER, R_COUNT, R_SECURE = 0x00, 0x08, 0x10, 0x18


class Recorder(Device):
    """Remembers the last write: a write anywhere below 0x08 stores its value and attributes;
    reads give VALUE (0x00), the writer's REQUESTER id (0x08), the write COUNT (0x10) and
    SECURE (0x18)."""

    size = 0x20

    def __init__(self) -> None:
        super().__init__()
        self.value = self.requester = self.count = self.secure = 0

    def read(self, offset: int, size: int) -> int:
        return {
            R_VALUE: self.value,
            R_REQUESTER: self.requester,
            R_COUNT: self.count,
            R_SECURE: self.secure,
        }.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        attrs = self.access_attrs
        assert attrs is not None
        self.value, self.count = value, self.count + 1
        self.requester, self.secure = attrs.requester_id, int(attrs.secure)

    def reset(self) -> None:
        self.value = self.requester = self.count = self.secure = 0


# -- a slow target -------------------------------------------------------------------------------


class Gate(Device):
    """A write of value V waits until the file ``GATE_DIR/V`` (V in hex) exists, then stores
    V; a read gives the last stored value. A deterministic slow target."""

    size = 0x10

    def __init__(self, gate_dir: str) -> None:
        super().__init__()
        self.gate_dir = Path(gate_dir)
        self.value = 0

    async def write(self, offset: int, size: int, value: int) -> None:  # type: ignore[override]
        gate = self.gate_dir / f"{value:x}"
        while not gate.exists():
            await asyncio.sleep(0.005)
        self.value = value

    def read(self, offset: int, size: int) -> int:
        return self.value
