"""Devices that run inside the server (a machine description's ``device: {class: ...}``): the
same ``Device`` classes that run as processes, on the SDK's ``DirectHost``, with their DMA going
through the bus's one initiator path (limits, re-entrancy, tracing) and their interrupt lines
to the bus's registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from mmiobus.devices.direct import DirectHost, region_info
from mmiobus.devices.host import DmaRequest
from mmiobus.machine.device_class import resolve_device_class
from mmiobus.machine.regions import constraints
from mmiobus.machine.schema import InProcessDevice, MmioSpec, RomdSpec
from mmiobus.memory.access import Endianness, MemTxResult
from mmiobus.memory.dispatch import engaged_owners

from ..core import Initiator

if TYPE_CHECKING:
    from ..core import BusCore

log = structlog.get_logger("mmiobus.devices")


class InProcessHost(DirectHost):
    """One device running in the server, serving one region of the machine description."""

    in_process = True
    peer = ""

    def __init__(self, core: BusCore, name: str, region_id: str, spec: MmioSpec | RomdSpec) -> None:
        assert isinstance(spec.device, InProcessDevice)
        cls = resolve_device_class(spec.device)
        super().__init__(
            cls(**spec.device.args),
            name,
            core.spaces,
            owner=core.devices.identity(name),
        )
        self.core = core
        self.region_id = region_id
        self.spec = spec
        self.initiator = Initiator(name, self.device.requester_id, self.owner)

    @property
    def region_ids(self) -> list[str]:
        return [self.region_id]

    async def serve_region(self) -> None:
        """Bind the region to the device and start it."""
        machine = self.core.machine
        mr = machine.regions[self.region_id]
        endianness = Endianness(self.spec.endianness)
        info = region_info(
            mr, self.region_id, endianness, machine.system.native_big, self.spec.posted_writes
        )
        mr.set_ops(
            self.ops(info, constraints(self.spec.valid), constraints(self.spec.impl), endianness)
        )
        self.core.devices.served[mr] = self.name
        await super().start([info])
        log.info("in-process device started", device=self.name, region=self.region_id)

    async def dma(self, request: DmaRequest) -> tuple[bytes, MemTxResult]:
        """As a remote device's DMA, through the bus's one initiator path."""
        self.dma_requests += 1
        chain = engaged_owners() | {id(self.owner)}
        return await self.core.initiate(self.initiator, request, chain)

    def set_irq(self, line: str, level: bool) -> None:
        self.core.irqs.set(f"{self.name}.{line}", level)

    def pulse_irq(self, line: str) -> None:
        self.core.irqs.pulse(f"{self.name}.{line}")
