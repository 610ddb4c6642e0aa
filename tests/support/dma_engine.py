"""Registers and bits of the example DMA engine (``mmiobus.devices.models.dma``), written out
here so that the tests check the model against its documented layout."""

from __future__ import annotations

SRC_LO, SRC_HI, DST_LO, DST_HI, LEN, CTRL, STATUS, RESULT = range(0, 0x20, 4)
START, IRQ_ENABLE, SYNC = 1, 2, 4  # CTRL
BUSY, DONE, ERROR = 1, 2, 4  # STATUS
