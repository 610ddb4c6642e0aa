"""Running a ``Device`` directly on a memory system in this process: no server, no network.

    from mmiobus.memory import MemorySystem
    from mmiobus.devices.direct import attach
    from mmiobus.devices.models.timer import Timer

    system = MemorySystem()
    root = system.container("system", 2**64)
    space = system.address_space("memory", root)
    host = await attach(Timer(), space, 0x1000_0000)   # maps a region, starts the device
    await space.write_async(0x1000_0008, (100).to_bytes(4, "little"))
    host.irqs                                           # {"irq": False}: the lines' levels

The device's region answers through the memory model's dispatch (sizes, byte order and
re-entrancy rules as on the bus), its DMA goes straight to the address spaces, and its
interrupt lines are kept in ``irqs`` (and passed to ``on_irq``). The server runs devices of a
machine description (``device: {class: ...}``) on this same host.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog
from mmiobus.memory.access import (
    AccessConstraints,
    Endianness,
    MemoryRegionOps,
    MemTxAttrs,
    MemTxResult,
)
from mmiobus.memory.addrspace import AddressSpace, ReadResult
from mmiobus.memory.dispatch import engaged_owners, reset_engaged_owners, set_engaged_owners
from mmiobus.memory.region import MemoryRegion, RegionKind

from .device import Device
from .host import DmaRequest, RegionInfo, byteorder_of

log = structlog.get_logger("mmiobus.device")


class DirectHost:
    """The host of one device on a memory system (see the module docstring).

    ``address_spaces`` maps address-space ids to spaces for the device's DMA ("" is the first
    one); ``owner`` identifies the device to the re-entrancy guard (by default this host).
    """

    def __init__(
        self,
        device: Device,
        name: str,
        address_spaces: Mapping[str, AddressSpace],
        *,
        owner: object = None,
        on_irq: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.device = device
        self.name = name
        self.address_spaces = address_spaces
        self.owner = owner if owner is not None else self
        self.on_irq = on_irq
        self.irqs: dict[str, bool] = {}
        self.accesses = 0
        self.dma_requests = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- serving a region ---------------------------------------------------------------------

    def ops(
        self,
        region: RegionInfo,
        valid: AccessConstraints,
        impl: AccessConstraints,
        endianness: Endianness,
    ) -> MemoryRegionOps:
        """Ops that hand the region's accesses to the device (a raising handler answers
        MEMTX_ERROR, as the memory model does for any ops)."""
        serve = self.device.serve

        def read(offset: int, size: int, attrs: MemTxAttrs) -> Any:
            self.accesses += 1
            return serve(region, offset, size, False, 0, attrs, None)

        def write(offset: int, size: int, value: int, attrs: MemTxAttrs) -> Any:
            self.accesses += 1
            return serve(region, offset, size, True, value, attrs, None)

        return MemoryRegionOps(
            read=read,
            write=write,
            endianness=endianness,
            valid=valid,
            impl=impl,
            owner=self.owner,
        )

    async def start(self, regions: list[RegionInfo]) -> None:
        """Attach the device: it serves ``regions`` (whose ops the caller has set)."""
        await self.device.bind(self, regions)

    async def stop(self) -> None:
        """Detach the device and cancel its background tasks."""
        try:
            await self.device.unbind()
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def reset(self, timeout: float | None = None) -> None:
        """Reset the device (``TimeoutError`` if it takes longer than ``timeout`` seconds)."""
        await asyncio.wait_for(self.device.perform_reset(), timeout)

    @property
    def counters(self) -> dict[str, int]:
        return {"accesses": self.accesses, "timeouts": 0, "dma": self.dma_requests}

    # -- the Host interface -------------------------------------------------------------------

    async def dma(self, request: DmaRequest) -> tuple[bytes, MemTxResult]:
        """A DMA access straight into the address space, as the device: its requester id is
        stamped on it and the device is engaged, so its own regions (and re-entrant cycles)
        answer MEMTX_ACCESS_ERROR. An unknown address space is a DECODE_ERROR."""
        self.dma_requests += 1
        space = self.address_spaces.get(request.address_space)
        if space is None:
            log.warning(
                "device DMA refused",
                device=self.name,
                reason=f"no address space with id {request.address_space!r}",
            )
            return b"", MemTxResult.DECODE_ERROR
        attrs = request.attrs._replace(requester_id=self.device.requester_id)
        token = set_engaged_owners(engaged_owners() | {id(self.owner)})
        try:
            return await access(space, request, attrs)
        finally:
            reset_engaged_owners(token)

    def set_irq(self, line: str, level: bool) -> None:
        self.irqs[line] = level
        if self.on_irq is not None:
            self.on_irq(line, level)

    def pulse_irq(self, line: str) -> None:
        self.set_irq(line, True)
        self.set_irq(line, False)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task of the device, in a context of its own: not part of whatever
        access started it (so not in its re-entrancy chain)."""
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def access(
    space: AddressSpace, request: DmaRequest, attrs: MemTxAttrs
) -> tuple[bytes, MemTxResult]:
    """Run ``request`` in ``space`` with ``attrs``: (bytes read or b"", result)."""
    if request.data is not None:
        w = space.dispatch_write(request.addr, request.data, attrs)
        if not isinstance(w, int):
            w = await w
        return b"", MemTxResult(w)
    r = space.dispatch_read(request.addr, request.size, attrs)
    if type(r) is not ReadResult:
        r = await r  # type: ignore[misc]
    return r[0], r[1]  # type: ignore[index]


def region_info(
    mr: MemoryRegion,
    region_id: str,
    endianness: Endianness,
    native_big: bool,
    posted_writes: bool = False,
) -> RegionInfo:
    """How the device sees ``mr``: its id, size, byte order (native resolved) and kind."""
    return RegionInfo(
        region_id,
        mr.size,
        byteorder_of(endianness, native_big),
        posted_writes,
        mr.kind is RegionKind.ROMD,
    )


async def attach(
    device: Device,
    space: AddressSpace,
    addr: int,
    *,
    name: str | None = None,
    priority: int = 0,
    container: MemoryRegion | None = None,
) -> DirectHost:
    """Map a new mmio region served by ``device`` at ``addr`` (in ``container``, by default
    ``space``'s root) with the device's own size, access sizes and byte order, and start the
    device. Its DMA reaches the address spaces of ``space``'s memory system."""
    system = space.system
    name = name or type(device).__name__.lower()
    spaces = {as_.name: as_ for as_ in system.address_spaces}
    spaces[""] = system.address_spaces[0]
    host = DirectHost(device, name, spaces)
    endianness = Endianness(device.endianness)
    valid = AccessConstraints(device.valid[0], device.valid[1], device.unaligned)
    impl = AccessConstraints(device.impl[0], device.impl[1], device.unaligned)
    mr = system.mmio(name, device.size)
    info = region_info(mr, name, endianness, system.native_big, device.posted_writes)
    mr.set_ops(host.ops(info, valid, impl, endianness))
    (container or space.root).add_subregion(addr, mr, priority)
    await host.start([info])
    return host
