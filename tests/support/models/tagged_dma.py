"""The example DMA engine with a requester id of its own (``TaggedDmaEngine``): the tracing tests
check that its DMA carries that id."""

from __future__ import annotations

from mmiobus.devices.models.dma import DmaEngine


class TaggedDmaEngine(DmaEngine):
    """The example DMA engine with a requester id of its own, stamped on its DMA."""

    requester_id = 0x42
