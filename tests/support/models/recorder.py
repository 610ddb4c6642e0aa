"""A device that serves memory and records every access it serves (``Recorder``), and the
functions that read its record back.

The device protocol tests run it as a real `mmiobus device run` process: it appends each access
(region, offset, size, direction, value) to a JSON-lines file. Its memory starts as a byte pattern
and values are read and written in the region's byte order, so the bytes a client sees can be
checked against what the device answered.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mmiobus.devices import Device

from support.wait import TIMEOUT, wait_for


def pattern(size: int, seed: int = 0) -> bytes:
    """The initial memory of a ``Recorder``: no two neighbouring bytes are equal."""
    return bytes((seed + i * 37 + 11) & 0xFF for i in range(size))


class Recorder(Device):
    """Serves memory (a byte pattern) and records each access to ``log`` as one JSON line.

    ``delay``: seconds every access takes; ``stall``: reads never answer (writes still do).
    """

    size = 0x1000
    valid = (1, 8)
    impl = (1, 8)

    def __init__(
        self, log: str, size: int = 0x1000, seed: int = 0, delay: float = 0.0, stall: bool = False
    ) -> None:
        super().__init__()
        self.size = int(size)
        self.log = open(log, "a", buffering=1)  # noqa: SIM115 - lives as long as the device
        self.memory = bytearray(pattern(self.size, int(seed)))
        self.delay = float(delay)
        self.stall = bool(stall)

    def _record(self, **entry: Any) -> None:
        region = self.region
        assert region is not None
        entry.update(region=region.id, byteorder=region.byteorder)
        self.log.write(json.dumps(entry) + "\n")

    async def read(self, offset: int, size: int) -> int:
        region = self.region
        assert region is not None
        value = int.from_bytes(
            self.memory[offset : offset + size].ljust(size, b"\0"), region.byteorder
        )
        self._record(op="read", offset=offset, size=size, value=value)
        if self.stall:
            await asyncio.Event().wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return value

    async def write(self, offset: int, size: int, value: int) -> None:
        region = self.region
        assert region is not None
        self._record(op="write", offset=offset, size=size, value=value)
        if self.delay:
            await asyncio.sleep(self.delay)
        end = min(offset + size, self.size)
        self.memory[offset:end] = value.to_bytes(size, region.byteorder)[: end - offset]


def read_records(path: Path, count: int = 0, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """The accesses a ``Recorder`` logged; waits until there are at least ``count``."""
    seen: list[dict[str, Any]] = []

    def enough() -> bool:
        text = path.read_text() if path.exists() else ""
        seen[:] = [json.loads(line) for line in text.splitlines() if line.endswith("}")]
        return len(seen) >= count

    wait_for(enough, timeout, 0.02, lambda: f"expected {count} recorded accesses, got {seen}")
    return seen


def bytes_from_records(records: list[dict[str, Any]], base: int, length: int) -> bytes:
    """The bytes a client should read, put together from the device's answers."""
    out = bytearray(length)
    for r in records:
        chunk = r["value"].to_bytes(r["size"], r["byteorder"])
        for i, b in enumerate(chunk):
            if 0 <= r["offset"] - base + i < length:
                out[r["offset"] - base + i] = b
    return bytes(out)
