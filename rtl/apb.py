"""An APB (AMBA 3/4) requester, the bus-functional model the simulator side drives a design
with. Runs inside the simulator (imports cocotb).

A transfer starts at a falling edge of PCLK: the setup phase (PSEL, address, direction, data,
strobes) is sampled by the design at the next rising edge, then the access phase (PENABLE)
lasts until the design raises PREADY (a design without PREADY is always ready), sampled at a
rising edge with PRDATA and PSLVERR. So a transfer takes two cycles plus the design's wait
states, and a half cycle to reach the falling edge; then PSEL falls until the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cocotb.triggers import FallingEdge, RisingEdge

MAX_WAIT_CYCLES = 1000  # a design that never raises PREADY: the transfer fails


@dataclass
class ApbSignals:
    """The design's APB ports (None: the optional ones it lacks)."""

    clk: Any
    psel: Any
    penable: Any
    pwrite: Any
    paddr: Any
    pwdata: Any
    prdata: Any
    pstrb: Any = None
    pready: Any = None
    pslverr: Any = None


class ApbError(Exception):
    """The design answered PSLVERR, or never PREADY."""


class ApbRequester:
    """Reads and writes of whole words (``width`` bits) over ``signals``."""

    def __init__(self, signals: ApbSignals) -> None:
        self.s = signals
        self.width = len(signals.pwdata)
        self.strobe_all = (1 << (self.width // 8)) - 1
        self.idle()

    def idle(self) -> None:
        s = self.s
        s.psel.value = 0
        s.penable.value = 0
        s.pwrite.value = 0

    async def _transfer(self, addr: int, write: bool, data: int, strobe: int) -> int:
        s = self.s
        await FallingEdge(s.clk)
        s.paddr.value = addr
        s.pwrite.value = int(write)
        s.pwdata.value = data if write else 0
        if s.pstrb is not None:
            s.pstrb.value = strobe if write else 0
        s.psel.value = 1
        s.penable.value = 0
        await RisingEdge(s.clk)
        s.penable.value = 1
        for _ in range(MAX_WAIT_CYCLES):
            await RisingEdge(s.clk)
            if s.pready is None or int(s.pready.value):
                break
        else:
            self.idle()
            raise ApbError(f"no PREADY within {MAX_WAIT_CYCLES} cycles")
        failed = s.pslverr is not None and int(s.pslverr.value)
        value = 0 if write else int(s.prdata.value)
        self.idle()
        if failed:
            raise ApbError("PSLVERR")
        return value

    async def read(self, addr: int) -> int:
        """The word at ``addr``."""
        return await self._transfer(addr, False, 0, 0)

    async def write(self, addr: int, data: int, strobe: int | None = None) -> None:
        """Write ``data`` at ``addr``, the byte lanes of ``strobe`` (all by default)."""
        await self._transfer(addr, True, data, self.strobe_all if strobe is None else strobe)
