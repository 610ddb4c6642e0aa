"""``mmiobus cpu run``: one CPU of the bus's machine, in this process.

The CPU attaches to the bus like a device does — a session named after the CPU, with the
device's credentials and retries until the bus answers — and then:

* it serves the regions of its board devices (the bus forwards clients' accesses to them), so
  timers and interrupt controllers are served without a round trip and what clients read is
  what the guest sees;
* its other accesses are DMA requests on the session, traced with the CPU as initiator;
* it maps the machine's RAM and ROM where the bus's host shares them (same host: client writes
  and device DMA are what the guest sees, guest stores are what clients read); on another host
  it runs on a private copy, loaded from the bus when it attaches, and says so;
* it follows the bus interrupt lines wired to its interrupt controller.

Losing the bus ends the run (the guest's state went with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog
from mmiobus.affinity import pin_process_here, unpin_process
from mmiobus.client.loopthread import LoopThread
from mmiobus.credentials import Credentials
from mmiobus.devices import Device, DeviceRunner
from mmiobus.devices.host import DmaRequest
from mmiobus.devices.session import RemoteHost
from mmiobus.endpoints import open_channel, unreachable
from mmiobus.memory.access import MEMTXATTRS_UNSPECIFIED, MemTxResult
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2_grpc
from mmiobus.v1 import devices_pb2 as dpb

from .board import Board, build
from .layout import Layout, LayoutError, address_space, declared_regions, layout
from .remote_bus import SessionBus, poll_max
from .results import CpuError, RunResult

log = structlog.get_logger("mmiobus.cpu")

MiB = 1 << 20


class FrontendError(Exception):
    """The CPU cannot start; says why in one line."""


@dataclass
class Images:
    """What to load: firmware and payload files (None: the description's default, if any)."""

    firmware: str | None = None
    payload: str | None = None


class _CpuDevice(Device):
    """The CPU as a device of the bus: it serves its board devices' regions."""

    valid = impl = (1, 8)

    def __init__(self, frontend: CpuFrontend) -> None:
        super().__init__()
        self.frontend = frontend

    def read(self, offset: int, size: int) -> Any:
        board, region = self.frontend.board, self.region
        if board is None or region is None:
            return 0, MemTxResult.ERROR
        return board.serve_read(region.id, offset, size)

    def write(self, offset: int, size: int, value: int) -> Any:
        board, region = self.frontend.board, self.region
        if board is None or region is None:
            return MemTxResult.ERROR
        board.serve_write(region.id, offset, size, value)
        return None

    async def start(self) -> None:
        host = self._host
        assert isinstance(host, RemoteHost)
        await self.frontend.attached(host)

    def stop(self) -> None:
        self.frontend.detached()


class CpuFrontend:
    """Runs CPU ``name`` of the bus at ``server`` (see the module docstring)."""

    def __init__(
        self,
        server: str,
        name: str = "cpu0",
        *,
        images: Images | None = None,
        token: str = "",
        reconnect: bool = True,
        count_instructions: bool = True,
        arch: str | None = None,
        credentials: Credentials | None = None,
        pin: bool = True,
        poll_max_ns: int | None = None,
    ) -> None:
        self.server = server
        creds = Credentials.from_env() if credentials is None else credentials
        self.credentials = creds.with_token(token) if token else creds
        self.arch = arch
        self.pin = pin  # the process's threads on one core while it runs (mmiobus.affinity)
        self.poll_max_ns = poll_max(poll_max_ns, pin)  # for answers (mmiobus.cpu.remote_bus)
        self.name = name
        self.images = images or Images()
        self.token = token
        self.reconnect = reconnect
        self.count_instructions = count_instructions
        self.board: Board | None = None
        self.bus: SessionBus | None = None
        self.private_ram: list[str] = []
        self._layout: Layout | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: LoopThread | None = None
        self._task: asyncio.Task[Any] | None = None
        self._images: list[tuple[int, bytes, str]] = []
        self._backings: dict[str, mmap.mmap] = {}  # region id -> the bytes the CPU maps
        self._following: asyncio.Task[None] | None = None

    # -- running (the caller's thread) ------------------------------------------------------

    def run(
        self,
        until_pc: int | None = None,
        timeout_seconds: float | None = None,
        max_instructions: int | None = None,
        on_ready: Any = None,
    ) -> RunResult:
        """Attach, load, run until a stop condition; returns the run's result (``CpuError``
        for a guest that cannot go on, ``FrontendError`` for a CPU that cannot start)."""
        loop = self._loop = LoopThread()
        attach = loop.submit(self._attach())
        attach.add_done_callback(self._attach_ended)
        try:
            self._ready.wait()
            if self._failure is not None:
                raise self._failure
            board = self.board
            assert board is not None
            if on_ready is not None:
                on_ready(self)
            pinned = pin_process_here() if self.pin else None
            try:
                return board.engine.run(until_pc, timeout_seconds, max_instructions)
            finally:
                unpin_process(pinned[1] if pinned is not None else None)
        finally:
            try:
                loop.run(self._detach())
            finally:
                loop.stop()

    def stop(self) -> None:
        """End the run at the next slice boundary (any thread; Ctrl-C)."""
        if self.board is not None:
            self.board.engine.stop()
        else:
            self._fail(FrontendError("stopped before the CPU started"))

    def _attach_ended(self, future: Any) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        self._ready.set()
        if self.bus is not None:
            self.bus.lost(str(error))

    # -- attaching (the loop's thread) ------------------------------------------------------

    async def _detach(self) -> None:
        """End the session (and let it unwind) once the run is over."""
        if self._following is not None:
            self._following.cancel()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _attach(self) -> None:
        self._task = asyncio.current_task()
        cpu, topology = await self._describe()
        self._layout = layout(cpu, topology)
        self._images = self._read_images(cpu)  # before waiting: a missing file fails at once
        await self._wait_for_devices(cpu, topology)
        runner = DeviceRunner(
            _CpuDevice(self),
            self.server,
            name=cpu.name,
            claims=sorted(set(cpu.board_devices.values())),
            token=self.token,
            reconnect=self.reconnect,
            credentials=self.credentials,
        )
        await runner.run()
        if self.board is None:
            raise FrontendError(f"the bus at {self.server} ended the session before the CPU ran")

    async def _describe(self) -> tuple[pb.Cpu, pb.Topology]:
        """The CPU's description and the topology, from the bus (retrying until it answers,
        unless told not to)."""
        delay = 0.1
        while True:
            try:
                async with open_channel(self.server, credentials=self.credentials) as channel:
                    stub = bus_pb2_grpc.BusStub(channel)
                    info = await stub.GetInfo(pb.GetInfoRequest(), timeout=10)
                    topology = await stub.GetTopology(
                        pb.GetTopologyRequest(flat_views=True), timeout=30
                    )
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise FrontendError(
                        f"cannot reach the bus at {self.server}: {e.details() or e.code().name}"
                    ) from None
                why = unreachable(self.server, e.details() or "")
                if not self.reconnect:
                    raise FrontendError(why) from None
                log.warning("cannot reach the bus; retrying", reason=why,
                            retry_in=round(delay, 2))  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for cpu in info.cpus:
            if cpu.name == self.name:
                if self.arch is not None and cpu.arch != self.arch:
                    raise FrontendError(
                        f"the machine's {cpu.name} is {cpu.arch}, not {self.arch}: run "
                        f"{self.arch} firmware on a machine with such a CPU (`mmiobus machines`)"
                    )
                return cpu, topology
        names = ", ".join(c.name for c in info.cpus) or "none"
        raise FrontendError(
            f"the machine at {self.server} ({info.machine}) has no CPU named {self.name!r} "
            f"(its CPUs: {names}); serve a machine with one, e.g. `mmiobus serve --machine "
            "riscv-virt`"
        )

    async def _wait_for_devices(self, cpu: pb.Cpu, topology: pb.Topology) -> None:
        """Until the device processes the machine declares serve their regions (firmware
        prints to its console first thing)."""
        declared = declared_regions(cpu, topology)
        said = False
        async with open_channel(self.server, credentials=self.credentials) as channel:
            stub = devices_pb2_grpc.DevicesStub(channel)
            while True:
                attached = await stub.ListDevices(dpb.ListDevicesRequest(), timeout=10)
                serving = {(r, d.name) for d in attached.devices for r in d.regions}
                missing = sorted({d for r, d in declared.items() if (r, d) not in serving})
                if not missing:
                    return
                if not said:
                    log.info("the CPU waits for its devices", cpu=cpu.name, devices=missing)
                    said = True
                await asyncio.sleep(0.1)

    async def attached(self, host: RemoteHost) -> None:
        """The session is up: map RAM, build the engine, load the images, follow interrupts."""
        if self.board is not None:  # reconnected after losing the bus: the guest is gone
            raise FrontendError("the bus went away while the CPU ran")
        try:
            lay = self._layout
            assert lay is not None
            loop = asyncio.get_running_loop()
            self.bus = SessionBus(loop, host, lay.cpu.address_space, self.poll_max_ns)
            backings = await self._backings_for(host, lay)
            board = build(lay, self.bus, backings, count_instructions=self.count_instructions)
            self._load_images(board)
            host.follow_irqs(sorted(lay.cpu.interrupts), lambda lines: _levels(board, lines))
            self.board = board
            self._following = loop.create_task(self._follow_flat_view(host, board))
            if lay.slow_ram:
                log.warning("RAM that is not whole pages goes through the bus (slow)",
                            regions=sorted(set(lay.slow_ram)))  # fmt: skip
        except BaseException as e:
            self._fail(e if isinstance(e, (FrontendError, LayoutError, CpuError)) else
                       FrontendError(f"the CPU cannot start: {e}"))  # fmt: skip
            raise
        self._ready.set()

    def detached(self) -> None:
        """The session ended (the bus went away, or this run is over): the run cannot go on,
        and the session is not tried again (the guest's memory went with the bus)."""
        if self.bus is not None:
            self.bus.lost(f"the bus at {self.server} went away")
        if self.board is not None:
            self.board.engine.stop()
        if self._following is not None:
            self._following.cancel()
        if self._task is not None:
            self._task.cancel()

    async def _backings_for(self, host: RemoteHost, lay: Layout) -> dict[str, mmap.mmap]:
        """The bytes of each RAM and ROM region ``lay`` maps: those the CPU maps already, and
        the others from the bus (``_map``)."""
        out = {}
        for region in lay.regions_to_share:
            known = self._backings.get(region)
            need = max(r.offset + r.size for r in lay.ram if r.region == region)
            if known is None or len(known) < need:  # a private copy covers what was mapped
                known = self._backings[region] = await self._map(host, region, lay)
            out[region] = known
        return out

    async def _follow_flat_view(self, host: RemoteHost, board: Board) -> None:
        """Remap the CPU's RAM, ROM and bus windows after each change to its address space's
        flat view (board devices keep their places), as the bus's WatchTopology tells them."""
        cpu = board.layout.cpu
        try:
            async with open_channel(self.server, credentials=self.credentials) as channel:
                stub = bus_pb2_grpc.BusStub(channel)
                topology = await stub.GetTopology(pb.GetTopologyRequest(), timeout=30)
                space = address_space(cpu, topology).id
                changes = stub.WatchTopology(pb.WatchTopologyRequest(address_space=space))
                async for _change in changes:  # the first, a snapshot: changes since _describe
                    topology = await stub.GetTopology(
                        pb.GetTopologyRequest(flat_views=True), timeout=30
                    )
                    try:
                        lay = layout(cpu, topology, board.layout.board)
                        backings = await self._backings_for(host, lay)
                    except LayoutError as e:
                        log.warning("the CPU cannot follow the new memory map; it keeps the one "
                                    "it had", cpu=cpu.name, reason=str(e))  # fmt: skip
                        continue
                    board.remap(lay, backings)
        except LayoutError as e:  # its address space was deleted
            log.warning("the CPU no longer follows the bus's memory map", cpu=cpu.name,
                        reason=str(e))  # fmt: skip
        except grpc.RpcError as e:
            gone = (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)  # said elsewhere
            if self.board is not None and e.code() not in gone:
                log.warning("the CPU no longer follows the bus's memory map",
                            cpu=cpu.name, reason=e.details() or e.code().name)  # fmt: skip

    async def _map(self, host: RemoteHost, region: str, lay: Layout) -> mmap.mmap:
        """The bytes of ``region``: the bus's own, when they are on this host; else a private
        copy read from the bus."""
        try:
            shared = await host.share_memory(region)
        except Exception as e:
            reason = str(e)
        else:
            mapping = _open_shared(shared)
            if mapping is not None:
                return mapping
            reason = "the bus runs on another host"
        self.private_ram.append(region)
        log.warning(
            "the CPU runs on a private copy of this region: what the guest stores there, the "
            "bus does not see, and the reverse",
            region=region,
            reason=reason,
        )
        return await self._private_copy(host, region, lay)

    async def _private_copy(self, host: RemoteHost, region: str, lay: Layout) -> mmap.mmap:
        ranges = [r for r in lay.ram if r.region == region]
        size = max(r.offset + r.size for r in ranges)
        mapping = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        for r in ranges:
            for done in range(0, r.size, MiB):
                n = min(MiB, r.size - done)
                data, result = await host.dma(_read(lay.cpu.address_space, r.base + done, n))
                if not result:
                    mapping[r.offset + done : r.offset + done + n] = data
        return mapping

    def _read_images(self, cpu: pb.Cpu) -> list[tuple[int, bytes, str]]:
        """(address, bytes, what) of each image to load: firmware, payload, device tree."""
        firmware = self.images.firmware or cpu.firmware or None
        if firmware is None:
            raise FrontendError("say which firmware to run: --firmware FILE")
        images = [(cpu.firmware_addr, _read_image(firmware, "firmware"), "firmware")]
        payload = self.images.payload or cpu.payload or None
        if payload is not None:
            if not cpu.payload_addr:
                raise FrontendError(f"CPU {cpu.name!r} takes no payload (its board has no place "
                                    "for one)")  # fmt: skip
            images.append((cpu.payload_addr, _read_image(payload, "payload"), "payload"))
        images.append((cpu.fdt_addr, cpu.fdt, "device tree"))
        return images

    def _load_images(self, board: Board) -> None:
        for addr, data, what in self._images:
            board.load(addr, data, what)


def _levels(board: Board, lines: list[dpb.IrqLine]) -> None:
    for line in lines:
        board.set_line(line.name, line.level)


def _read(address_space: str, addr: int, size: int) -> DmaRequest:
    return DmaRequest(address_space, addr, size, None, MEMTXATTRS_UNSPECIFIED)


def _read_image(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise FrontendError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def _open_shared(shared: dpb.SharedMemory) -> mmap.mmap | None:
    """The region's bytes mapped from the path the bus gave, if this host has that very file."""
    try:
        fd = os.open(shared.path, os.O_RDWR)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (info.st_ino, info.st_dev) != (shared.inode, shared.device):
            return None
        return mmap.mmap(fd, shared.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError:
        return None
    finally:
        os.close(fd)
