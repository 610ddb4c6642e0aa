"""CPUs the server runs itself, as QEMU runs its CPUs beside its memory: the engine runs in a
thread of the server's process, maps the machine's RAM directly, serves its board devices'
regions through function calls, and issues every other access on the server's loop (a device
in the server is a function call away, a device process one hop away).

A CPU whose description says ``run: server`` starts with the server; ``mmiobus serve --cpu
NAME`` starts one that would otherwise run as ``mmiobus cpu run``. Its accesses are traced and
counted with the CPU as initiator, like a device's DMA.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from mmiobus.affinity import process_pin
from mmiobus.cpu.board import Board, build
from mmiobus.cpu.layout import LayoutError, declared_regions, layout
from mmiobus.cpu.remote_bus import Access, PipelinedBus, poll_max
from mmiobus.cpu.results import CpuError, RunResult
from mmiobus.devices.host import DmaRequest
from mmiobus.machine.cpus import CpuSpec
from mmiobus.machine.regions import constraints
from mmiobus.machine.schema import MmioSpec
from mmiobus.memory.access import MEMTXATTRS_UNSPECIFIED, Endianness, MemoryRegionOps, MemTxAttrs
from mmiobus.memory.listener import MemoryListener, MemoryRegionSection
from mmiobus.v1 import bus_pb2 as pb

from .core import Initiator
from .errors import Conflict
from .irq import IrqLine
from .ordered import OrderedAccesses
from .services.convert import cpu_to_pb, topology_to_pb

if TYPE_CHECKING:
    from .core import BusCore

log = structlog.get_logger("mmiobus.cpu")


@dataclass(frozen=True)
class CpuRun:
    """What to run on an in-server CPU, and until when (None: the description's defaults;
    without ``until`` or ``timeout`` it runs until the guest powers off or the server stops)."""

    firmware: str | None = None
    payload: str | None = None
    until: int | None = None
    timeout: float | None = None
    count_instructions: bool = True


class LoopBus(PipelinedBus):
    """The bus as an in-server CPU sees it: its accesses, in order, on the server's loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ordered: OrderedAccesses,
        space: str,
        poll_max_ns: int,  # poll_max() says how long
    ):
        super().__init__(poll_max_ns)
        self._loop = loop
        self._ordered = ordered
        self._space = space
        self._chain = frozenset({id(ordered.who.owner)})

    def _issue(self, accesses: list[Access]) -> None:
        self._loop.call_soon_threadsafe(self._submit, accesses)

    def _submit(self, accesses: list[Access]) -> None:
        space, submit, chain, put = self._space, self._ordered.submit, self._chain, self.replies.put
        for rid, addr, size, data in accesses:
            if data is None:
                request = DmaRequest(space, addr, size, None, MEMTXATTRS_UNSPECIFIED)

                def answer(out: bytes, result: int, rid: int = rid) -> None:
                    put((rid, out, result))
            else:
                request = DmaRequest(space, addr, len(data), data, MEMTXATTRS_UNSPECIFIED)

                def answer(out: bytes, result: int, rid: int = rid) -> None:
                    if result:  # a posted write is answered only if it failed
                        put((rid, b"", result))

            submit(request, chain, answer)


class FlatViewFollower(MemoryListener):
    """Calls ``changed`` after each committed transaction that changed its address space's
    flat view (a memory listener, as QEMU's CPUs have one on theirs)."""

    def __init__(self, changed: Callable[[], None]) -> None:
        self._changed = changed
        self._dirty = False
        self.armed = False  # off while registering: that replays the view as it is

    def region_add(self, section: MemoryRegionSection) -> None:
        self._dirty = True

    def region_del(self, section: MemoryRegionSection) -> None:
        self._dirty = True

    def commit(self) -> None:
        if self._dirty and self.armed:
            self._changed()
        self._dirty = False


class InServerCpu:
    """One CPU running in the server (see the module docstring); it lists as a device."""

    in_process = True
    peer = ""

    def __init__(self, core: BusCore, spec: CpuSpec, run: CpuRun) -> None:
        self.core = core
        self.spec = spec
        self.name = spec.name
        self.run_options = run
        self.identity = core.devices.identity(spec.name)
        self.board: Board | None = None
        self.result: RunResult | None = None
        self.error: CpuError | None = None
        self.done = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._starter: asyncio.Task[None] | None = None
        self._waiting: dict[str, str] = {}  # region id -> device process to serve it
        self._unwatch: Any = None
        self._follower: tuple[Any, FlatViewFollower] | None = None  # (address space, listener)
        self._remap_due = False
        self._core: int | None = None  # the core the process is pinned to while it runs
        self._pinned = False

    @property
    def region_ids(self) -> list[str]:
        return sorted(set(self.spec.board_devices.values()))

    @property
    def counters(self) -> dict[str, int]:
        accesses = sum(self.board.engine.accesses.values()) if self.board is not None else 0
        return {"accesses": accesses, "timeouts": 0, "dma": 0}

    async def reset(self, timeout: float) -> None:
        raise Conflict(f"{self.name} is a CPU: it cannot be reset while it runs")

    async def start(self) -> None:
        """Map RAM, bind the board devices, load the images, and start the engine's thread."""
        core, spec = self.core, self.spec
        cpu = cpu_to_pb(core.machine, spec)
        topology = topology_to_pb(core.machine, core.devices.served, flat_views=True)
        lay = layout(cpu, topology)
        backings = {
            region: core.sharing.share(core.machine.region(region), region).mapping
            for region in lay.regions_to_share
        }
        ordered = OrderedAccesses(core, Initiator(spec.name, 0, self.identity))
        bus = LoopBus(
            asyncio.get_running_loop(),
            ordered,
            cpu.address_space,
            poll_max(core.config.cpu_poll_max_ns, core.config.pin_cpus),
        )
        board = build(lay, bus, backings, count_instructions=self.run_options.count_instructions)
        firmware = self.run_options.firmware or cpu.firmware
        if not firmware:
            raise Conflict(f"CPU {spec.name!r} has no firmware: name one in the description "
                           "(firmware: {file: ...}) or with --firmware")  # fmt: skip
        board.load(cpu.firmware_addr, _read(firmware, "firmware"), "firmware")
        payload = self.run_options.payload or cpu.payload
        if payload:
            board.load(cpu.payload_addr, _read(payload, "payload"), "payload")
        board.load(cpu.fdt_addr, cpu.fdt, "device tree")
        self.board = board
        self._bind(board)
        self._follow_irqs(board)
        self._follow_flat_view(board, cpu)
        core.devices.cpus[self.name] = self
        self._waiting = declared_regions(cpu, topology)
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name=f"cpu-{self.name}", daemon=True
        )
        self._starter = loop.create_task(self._start_when_attached())

    async def _start_when_attached(self) -> None:
        """Start the engine once the device processes the machine declares serve their
        regions."""
        served, regions = self.core.devices.served, self.core.machine.regions

        def missing() -> list[str]:
            return sorted({d for r, d in self._waiting.items() if served.get(regions[r]) != d})

        if missing():
            log.info("CPU waits for its devices", cpu=self.name, devices=missing())
        while missing():
            await asyncio.sleep(0.05)
        assert self._thread is not None
        # Each access crosses the engine's, the loop's and gRPC's threads: one core for all
        # while the CPU runs (mmiobus.affinity); the engine's thread inherits it.
        if self.core.config.pin_cpus:
            self._pinned = True
            self._core = process_pin.acquire()
        self._thread.start()
        log.info("CPU started in the server", cpu=self.name, arch=self.spec.arch,
                 core=self._core)  # fmt: skip

    def _bind(self, board: Board) -> None:
        """The board devices' regions answer through the board (a function call)."""
        machine = self.core.machine
        for region_id in self.region_ids:
            spec = machine.declared[region_id].spec
            assert isinstance(spec, MmioSpec)

            def read(offset: int, size: int, attrs: MemTxAttrs, r: str = region_id) -> int:
                return board.serve_read(r, offset, size)

            def write(
                offset: int, size: int, value: int, attrs: MemTxAttrs, r: str = region_id
            ) -> None:
                board.serve_write(r, offset, size, value)

            mr = machine.regions[region_id]
            mr.set_ops(
                MemoryRegionOps(
                    read=read,
                    write=write,
                    endianness=Endianness(spec.endianness),
                    valid=constraints(spec.valid),
                    impl=constraints(spec.impl),
                    owner=self.identity,
                )
            )
            self.core.devices.served[mr] = self.name

    def _follow_irqs(self, board: Board) -> None:
        irqs = self.core.irqs
        wired = set(self.spec.interrupts)

        def changed(line: IrqLine, _now: int) -> None:
            if line.name in wired:
                board.set_line(line.name, line.level)

        self._unwatch = irqs.watch(changed)
        for line in irqs.select(sorted(wired)):
            board.set_line(line.name, line.level)

    def _follow_flat_view(self, board: Board, cpu: pb.Cpu) -> None:
        """Remap the CPU's RAM, ROM and bus windows after each change to its address space's
        flat view (once the transaction is done; board devices keep their places)."""
        core, loop = self.core, asyncio.get_running_loop()

        def remap() -> None:
            self._remap_due = False
            topology = topology_to_pb(core.machine, core.devices.served, flat_views=True)
            try:
                lay = layout(cpu, topology, board.layout.board)
                backings = {
                    region: core.sharing.share(core.machine.region(region), region).mapping
                    for region in lay.regions_to_share
                }
            except (LayoutError, Conflict) as e:
                log.warning("the CPU cannot follow the new memory map; it keeps the one it "
                            "had", cpu=self.name, reason=str(e))  # fmt: skip
                return
            board.remap(lay, backings)

        def changed() -> None:
            if not self._remap_due:
                self._remap_due = True
                loop.call_soon(remap)

        space = core.machine.address_space(self.spec.address_space)
        follower = FlatViewFollower(changed)
        space.register_listener(follower)
        follower.armed = True
        self._follower = (space, follower)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        board = self.board
        assert board is not None
        options = self.run_options
        try:
            self.result = board.engine.run(options.until, options.timeout)
            log.info("CPU stopped", cpu=self.name, summary=self.result.summary())
        except CpuError as e:
            self.error, self.result = e, e.result
            log.error("CPU stopped", cpu=self.name, error=str(e))
        finally:
            loop.call_soon_threadsafe(self._stopped)

    def _stopped(self) -> None:
        if self._pinned:  # the process's threads, their cores back when no CPU runs
            self._pinned = False
            process_pin.release()
        self.done.set()

    async def stop(self) -> None:
        """Stop the engine and wait for its thread."""
        if self._unwatch is not None:
            self._unwatch()
        if self._follower is not None:
            space, follower = self._follower
            self._follower = None
            if follower in space.listeners:  # a deleted address space's listeners are gone
                follower.armed = False
                space.unregister_listener(follower)
        if self._starter is not None:
            self._starter.cancel()
        if self.board is not None:
            self.board.engine.stop()
            if isinstance(self.board.engine.bus, PipelinedBus):
                self.board.engine.bus.lost("the server is stopping")
        if self._thread is not None and self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Conflict(f"cannot read the {what} {path}: {e.strerror or e}") from None
