"""A deterministic slow target (``Gate``): a write waits until the test opens its gate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mmiobus.devices import Device


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
