"""The example timer model (``mmiobus.devices.models.timer``) driven from a client, and a witness
that time went by on a running machine.

A test that checks that a stopped timer *stays* stopped cannot just sleep: on a machine that
stalled meanwhile, nothing would have had the chance to change, and the test would pass without
checking anything. ``let_periods_pass`` runs a second timer (the witness) and waits until it has
counted the periods, so the check that follows comes after that many periods of a timer that
did run.
"""

from __future__ import annotations

from support.rig import Rig
from support.wait import wait_for

# Registers and bits, as the model documents them.
T_CTRL, T_STATUS, T_PERIOD, T_COUNT = 0x0, 0x4, 0x8, 0xC
ENABLE, PERIODIC, IRQ_ENABLE = 1, 2, 4  # CTRL
EXPIRED = 1  # STATUS


class BusTimer:
    """The timer model serving region ``name`` at ``base``; reset, then given ``period_us``."""

    def __init__(self, rig: Rig, name: str, base: int, period_us: int) -> None:
        self.rig, self.name, self.base = rig, name, base
        rig.bus.reset_device(name)
        self.set(T_PERIOD, period_us)

    def reg(self, offset: int) -> int:
        return self.rig.bus.read_u32(self.base + offset)

    def set(self, offset: int, value: int) -> None:
        self.rig.bus.write_u32(self.base + offset, value)

    def line(self) -> bool:
        """The level of its interrupt line, NAME.irq, as the bus reports it."""
        return self.rig.bus.irqs(f"{self.name}.irq").get(f"{self.name}.irq", False)


def let_periods_pass(witness: BusTimer, periods: int) -> None:
    """Run ``witness`` (a freshly reset timer, hosted like the timer under test) as a periodic
    timer until it has counted ``periods`` expiries, then stop it. Fails, instead of returning,
    if it does not get there within ``wait_for``'s deadline."""
    witness.set(T_CTRL, ENABLE | PERIODIC)
    try:
        wait_for(
            lambda: witness.reg(T_COUNT) >= periods,
            message=lambda: (
                f"the witness timer {witness.name} counted {witness.reg(T_COUNT)} of {periods} "
                "periods: nothing ran meanwhile"
            ),
        )
    finally:
        witness.set(T_CTRL, 0)
