"""Device models for the tracing tests (device processes import them by name: the tests put
this folder on their PYTHONPATH)."""

from __future__ import annotations

from mmiobus.devices.models.dma import DmaEngine


class TaggedDmaEngine(DmaEngine):
    """The example DMA engine with a requester id of its own, stamped on its DMA."""

    requester_id = 0x42
