"""A device session for a peer: several claimed regions and several registered ones, each of
its own size (``Window``), or none at all (an initiator that only issues DMA).

``DeviceRunner`` serves claims and one registration sized by the device class; a peer's
windows are sized by the command line, so this runner asks for each registration itself.
Everything else (reconnecting, answering in order, interrupt lines, DMA) is DeviceRunner's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

import structlog
from mmiobus.credentials import Credentials
from mmiobus.devices import Device, DeviceRunner, Placement
from mmiobus.devices.host import RegionInfo
from mmiobus.devices.session import RemoteHost
from mmiobus.v1 import bus_pb2 as bpb
from mmiobus.v1 import devices_pb2 as pb
from mmiobus.wire import size_from_pb

from .windows import Window

log = structlog.get_logger("mmiobus.peers")


class PeerExited(Exception):
    """The peer went away while serving; carries its last words."""


class PeerRunner(DeviceRunner):
    """Serves ``device`` on the bus for ``windows`` (claimed and registered ones; registered
    regions get ids NAME, NAME.2, ... unless given); with no window the session only issues
    DMA. Each window's region, once the bus answers, is in ``self.regions`` by id, with the
    window that made it in ``self.window_of``."""

    def __init__(self, device: Device, server: str, *, name: str, windows: list[Window], **kw: Any):
        claims = [w.region for w in windows if w.region is not None]
        # DeviceRunner wants a region to serve; this runner asks for its own (see _regions).
        super().__init__(device, server, name=name, claims=claims, placement=Placement(0), **kw)
        self.placement = None
        self.windows = windows
        self.window_of: dict[str, Window] = {}

    async def _regions(self, host: RemoteHost) -> list[RegionInfo]:
        regions: list[RegionInfo] = []
        registered = 0
        for w in self.windows:
            if w.region is not None:
                req = pb.RegionRequest(claim=pb.ClaimRegion(region=w.region))
            else:
                registered += 1
                assert w.bus_addr is not None and w.size is not None
                region_id = self.name if registered == 1 else f"{self.name}.{registered}"
                reg = self._registration(region_id, w.size, w.bus_addr)
                req = pb.RegionRequest(register=reg)
            info = await self._request(host, req)
            self.window_of[info.id] = w
            regions.append(info)
        return regions


async def region_layout(
    server: str, credentials: Credentials | None = None
) -> dict[str, tuple[int, int]]:
    """The bus's mmio and romd regions: id -> (absolute address in its address space, size)."""
    from mmiobus.client import AsyncBus

    async with AsyncBus(server, credentials=credentials) as bus:
        topo = await bus.topology(flat_views=False)
    by_id = {r.id: r for r in topo.regions}
    out: dict[str, tuple[int, int]] = {}
    for r in topo.regions:
        if r.kind not in (bpb.MMIO, bpb.ROMD):
            continue
        addr, parent = r.addr, r.container
        while parent and parent in by_id:
            addr += by_id[parent].addr if by_id[parent].container else 0
            parent = by_id[parent].container
        out[r.id] = (addr, size_from_pb(r.size))
    return out


async def serve_while_alive(runner: PeerRunner, ended: Awaitable[str], what: str) -> None:
    """Run ``runner`` until cancelled, until it ends by itself (a refusal: raised), or until
    ``ended`` (the peer went away; it gives the peer's last words): then the session ends, so
    the bus applies the absent rules of the claimed regions and unmaps the registered ones,
    and ``PeerExited`` says why."""
    running = asyncio.ensure_future(runner.run())
    gone = asyncio.ensure_future(ended)
    try:
        done, _ = await asyncio.wait({running, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (running, gone):
            task.cancel()
    if gone in done:
        with contextlib.suppress(asyncio.CancelledError):
            await running
        reason = gone.result()
        log.error(f"{what} went away", reason=reason)
        raise PeerExited(reason)
    running.result()
