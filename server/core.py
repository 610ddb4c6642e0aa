"""The bus's state, built once and shared by every service: the machine, its address spaces by
id, the device registry, the interrupt lines, the trace hub, the configuration and the
accounting of accesses in flight.

Services translate between messages and this core; they never call each other. Every initiator
other than a client's own accesses — a device's DMA (remote or in the server), a CPU — reaches
memory through ``BusCore.initiate``, which applies the limits, the re-entrancy rules and tracing
once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from mmiobus.devices.host import DmaRequest
from mmiobus.machine import Machine
from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.memory.addrspace import AddressSpace, FutureRead, ReadResult
from mmiobus.memory.dispatch import reset_engaged_owners, set_engaged_owners
from mmiobus.memory.flatview import FlatView

from .config import ServerConfig
from .devices.registry import DeviceRegistry
from .errors import NotFound
from .irq import IrqRegistry
from .metrics import BusMetrics
from .ram_budget import RamBudget
from .recording import Describer
from .sharing import SharedRam
from .trace import AccessRecord, TraceHub

log = structlog.get_logger("mmiobus.server")

_now = time.monotonic_ns


@dataclass(frozen=True, slots=True)
class Initiator:
    """Who issues accesses: ``client``, a device (its DMA) or a CPU. ``owner`` is what the
    re-entrancy guard knows the device by (None for initiators that serve no region)."""

    name: str
    requester_id: int = 0
    owner: object = None


class Pending:
    """An access ``BusCore.start`` issued that waits for a device (``BusCore.finish``)."""

    __slots__ = ("attrs", "awaitable", "request", "space", "started", "view", "who")

    def __init__(
        self,
        who: Initiator,
        request: DmaRequest,
        space: AddressSpace,
        view: FlatView,
        attrs: MemTxAttrs,
        awaitable: Any,
        started: int,
    ) -> None:
        self.who = who
        self.request = request
        self.space = space
        self.view = view
        self.attrs = attrs
        self.awaitable = awaitable
        self.started = started


class Inflight:
    """Accesses in flight, so that shutdown can wait for them before letting devices go."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if not self.count:
            self.idle.set()


class BusCore:
    """One machine on the bus, with everything the services share (see the module docstring)."""

    def __init__(self, machine: Machine, config: ServerConfig, version: str = "") -> None:
        self.machine = machine
        self.config = config
        self.limits = config.limits
        self.version = version
        self.trace = TraceHub()
        self.describer = Describer(machine)
        self.irqs = IrqRegistry()
        self.devices = DeviceRegistry(machine, self.irqs, config)
        self.inflight = Inflight()
        self.sharing = SharedRam()
        self.ram = RamBudget(machine, config.limits.max_ram_bytes)  # what peers may create
        # Counters for `serve --metrics` (None without: the access paths skip them).
        self.metrics = BusMetrics(self) if config.metrics else None
        self.devices.metrics = self.metrics  # sessions time their forwarded accesses
        # Set when the server stops: long-lived streams (traces, watches) end.
        self.stopping = asyncio.Event()
        # Address spaces by id, "" for the first one; updated in place (hosts keep it).
        self.spaces: dict[str, AddressSpace] = {}
        self.topology_changed()

    # -- address spaces -----------------------------------------------------------------------

    def topology_changed(self) -> None:
        """Address spaces may have come or gone: learn their ids again."""
        spaces = dict(self.machine.spaces)
        if self.machine.system.address_spaces:
            spaces[""] = self.machine.system.address_spaces[0]
        self.spaces.clear()
        self.spaces.update(spaces)
        self.describer.refresh()

    def space(self, key: str, where: str = "address_space") -> AddressSpace:
        """The address space with id ``key`` ("" for the first one); ``NotFound`` naming
        ``where`` otherwise."""
        space = self.spaces.get(key)
        if space is None:
            if not key:
                raise NotFound("this machine has no address space")
            raise NotFound(f"{where}: no address space with id {key!r}")
        return space

    # -- the initiator path -------------------------------------------------------------------

    def record(self, record: AccessRecord) -> None:
        """Offer one completed access to the trace subscribers (call only if trace.active)."""
        self.trace.offer([record], self.describer.describe)

    def start(
        self, who: Initiator, request: DmaRequest, chain: frozenset[int]
    ) -> tuple[bytes, MemTxResult] | Pending:
        """Issue an access for ``who`` (a device's DMA, a CPU's access): its requester id is
        stamped on it and ``chain`` (the ``id()`` of the owners whose callbacks it is part of)
        is its causal chain for the re-entrancy guard. Returns (bytes read or b"", result)
        when it completed at once, else a ``Pending`` for ``finish``; either way it is
        traced once complete. An unknown address space or an access above
        ``--max-access-bytes`` is refused as a bus fault (DECODE_ERROR), logged with the
        reason."""
        space = self.spaces.get(request.address_space)
        if space is None:
            return self._refuse(who, f"no address space with id {request.address_space!r}")
        if request.size > self.limits.max_access_bytes:
            return self._refuse(
                who,
                f"{request.size} bytes exceed the limit of {self.limits.max_access_bytes} "
                "bytes per access (--max-access-bytes)",
            )
        attrs = request.attrs._replace(requester_id=who.requester_id)
        token = set_engaged_owners(chain)
        try:
            view = space.current_map  # before the access: its ops may remap
            out: Any
            if request.data is not None:
                out = space.dispatch_write(request.addr, request.data, attrs)
                done = isinstance(out, int)
            else:
                out = space.dispatch_read(request.addr, request.size, attrs)
                done = type(out) is ReadResult
        finally:
            reset_engaged_owners(token)
        pending = Pending(who, request, space, view, attrs, out, _now())
        if not done:
            return pending
        return self._complete(pending, out, waited=False)

    async def finish(self, pending: Pending) -> tuple[bytes, MemTxResult]:
        """Wait for a started access; (bytes read or b"", result)."""
        return self._complete(pending, await pending.awaitable, waited=True)

    def then(self, pending: Pending, callback: Callable[[FutureRead], None]) -> bool:
        """Have ``callback`` called (on the loop) once the access completes, without a task,
        with what to pass to ``completed``: True when it waits for one future (a register of a
        device process); else False, and it must be awaited with ``finish``."""
        awaitable = pending.awaitable
        if type(awaitable) is not FutureRead:
            return False
        awaitable.then(callback)
        return True

    def completed(self, pending: Pending, out: FutureRead) -> tuple[bytes, MemTxResult]:
        """What ``finish`` returns, from what ``then``'s callback got."""
        return self._complete(pending, out.result(), waited=True)

    async def initiate(
        self, who: Initiator, request: DmaRequest, chain: frozenset[int]
    ) -> tuple[bytes, MemTxResult]:
        """``start`` and, if need be, ``finish``."""
        started = self.start(who, request, chain)
        if isinstance(started, Pending):
            return await self.finish(started)
        return started

    def _complete(self, p: Pending, out: Any, waited: bool) -> tuple[bytes, MemTxResult]:
        request = p.request
        if request.data is not None:
            data, result, answer = request.data, MemTxResult(out), b""
        else:
            data, result = out[0], out[1]
            answer = data
        if self.metrics is not None:
            self.metrics.initiated(p, result)
        if self.trace.active:
            now = _now()
            self.record(
                AccessRecord(
                    p.space,
                    p.view,
                    request.addr,
                    request.size,
                    request.data is not None,
                    data,
                    result,
                    p.who.name,
                    p.attrs.requester_id,
                    now - p.started if waited else 0,
                    now,
                )
            )
        return answer, result

    def _refuse(self, who: Initiator, reason: str) -> tuple[bytes, MemTxResult]:
        log.warning("device DMA refused", device=who.name, reason=reason)
        return b"", MemTxResult.DECODE_ERROR
