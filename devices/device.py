"""The device SDK: write a class, run it as a process or inside the server.

    from mmiobus.devices import Device

    class Counter(Device):
        size = 0x10

        def __init__(self, start: int = 0) -> None:
            super().__init__()
            self.value = start

        def read(self, offset: int, size: int) -> int:
            self.value += 1
            return self.value

        def write(self, offset: int, size: int, value: int) -> None:
            self.value = value

``read``/``write``/``reset`` may be plain or ``async``. A handler that raises answers
``MEMTX_ERROR`` for that access; it never takes the device down. From any method or task the
device can master the bus (``await self.dma_read(...)``, ``await self.dma_write(...)``) and
drive its interrupt lines (``self.irq().set(True)``, ``self.irq("tx").pulse()``). DMA from
inside a handler carries that access's identity, so the bus can refuse a re-entrant cycle
(A -> B -> A) with ``MEMTX_ACCESS_ERROR`` instead of deadlocking; a device's DMA never reaches
its own regions (also ``MEMTX_ACCESS_ERROR``). Handlers of one device may overlap when they
suspend (an async handler awaiting DMA does not hold up the next access), in a device process
as in the server; background tasks (``self.spawn``) run outside any access.

The same class runs out of process (``mmiobus device run MODULE:CLASS --server ADDR --claim
REGION`` or ``--at ADDR``) or in the server (``device: {class: MODULE:CLASS, args: {...}}`` on a
region of the machine description), with identical behaviour.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.memory.addrspace import ReadResult

from .host import DmaRequest, Host, RegionInfo
from .registers import RegisterFile

log = structlog.get_logger("mmiobus.device")


@dataclass(frozen=True)
class _Current:
    region: RegionInfo
    access_id: int | None
    attrs: MemTxAttrs


_CURRENT: contextvars.ContextVar[_Current | None] = contextvars.ContextVar(
    "mmiobus_device_access", default=None
)


class DmaFault(Exception):
    """A DMA access completed with a MemTxResult other than OK."""

    def __init__(self, addr: int, size: int, result: MemTxResult, is_write: bool) -> None:
        self.addr, self.size, self.result, self.is_write = addr, size, MemTxResult(result), is_write
        what = "write" if is_write else "read"
        super().__init__(f"DMA {what} of {size} bytes at {addr:#x} failed: {self.result!r}")


class Irq:
    """One of the device's interrupt lines (the bus calls it DEVICE.LINE)."""

    def __init__(self, device: Device, line: str) -> None:
        self._device = device
        self.line = line
        self.level = False

    def set(self, level: bool = True) -> None:
        """Set the line's level (sent only when it changes)."""
        level = bool(level)
        if level != self.level:
            self.level = level
            host = self._device._host
            if host is not None:
                host.set_irq(self.line, level)

    def raise_(self) -> None:
        self.set(True)

    def lower(self) -> None:
        self.set(False)

    def pulse(self) -> None:
        """Raise and lower at once (an edge)."""
        self.level = False
        host = self._device._host
        if host is not None:
            host.pulse_irq(self.line)


class Device:
    """Base class of device models; see the module docstring.

    Class attributes describe the region the device serves when it registers one itself (when
    it claims a region of the machine description, the description's values win).
    """

    size: int = 0x1000
    valid: tuple[int, int] = (1, 8)  # (min, max) access sizes accepted; (0, 0) means any
    impl: tuple[int, int] = (1, 8)  # (min, max) access sizes the handlers receive
    unaligned: bool = False
    endianness: str = "little"
    posted_writes: bool = False
    requester_id: int = 0  # stamped on the device's DMA
    registers: RegisterFile | None = None

    def __init__(self) -> None:
        self._host: Host | None = None
        self.regions: list[RegionInfo] = []
        self._irqs: dict[str, Irq] = {}

    # -- override these -----------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int | Awaitable[int]:
        """A read of ``size`` bytes at ``offset`` in the region: the value (an integer)."""
        if self.registers is not None:
            return self.registers.read(offset, size)
        return 0

    def write(self, offset: int, size: int, value: int) -> Awaitable[None] | None:
        """A write of ``value`` (``size`` bytes) at ``offset`` in the region."""
        if self.registers is not None:
            self.registers.write(offset, size, value)
        return None

    def reset(self) -> Awaitable[None] | None:
        """The bus asked for a reset (registers go back to their reset values)."""
        if self.registers is not None:
            self.registers.reset()
        for irq in self._irqs.values():
            irq.set(False)
        return None

    def start(self) -> Awaitable[None] | None:
        """Called once the device serves its regions (start background tasks here)."""
        return None

    def stop(self) -> Awaitable[None] | None:
        """Called when the device stops serving (its connection ended)."""
        return None

    # -- what a device can do -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._host.name if self._host is not None else type(self).__name__

    @property
    def attached(self) -> bool:
        return self._host is not None

    @property
    def region(self) -> RegionInfo | None:
        """The region of the access being served (None outside handlers)."""
        cur = _CURRENT.get()
        return cur.region if cur is not None else None

    @property
    def access_attrs(self) -> MemTxAttrs | None:
        """The attributes (requester id, secure, user) of the access being served."""
        cur = _CURRENT.get()
        return cur.attrs if cur is not None else None

    def irq(self, line: str = "irq") -> Irq:
        """The interrupt line ``line`` (``DEVICE.line`` on the bus)."""
        irq = self._irqs.get(line)
        if irq is None:
            irq = self._irqs[line] = Irq(self, line)
        return irq

    async def dma_read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str = "",
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> Any:
        """Read ``size`` bytes of the bus: the bytes (raising ``DmaFault`` on a fault), or with
        ``check=False`` a ``ReadResult(data, result)``."""
        data, result = await self._dma(address_space, addr, size, None, attrs)
        if not check:
            return ReadResult(data, MemTxResult(result))
        if result:
            raise DmaFault(addr, size, result, False)
        return data

    async def dma_write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str = "",
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> MemTxResult:
        """Write ``data`` to the bus: its MemTxResult (a fault raises ``DmaFault`` unless
        ``check=False``)."""
        _, result = await self._dma(address_space, addr, None, bytes(data), attrs)
        if check and result:
            raise DmaFault(addr, len(data), result, True)
        return result

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task for as long as the device is attached."""
        if self._host is None:
            raise RuntimeError("the device is not attached to a bus")
        return self._host.spawn(coro)

    # -- what the hosts call ------------------------------------------------------------------
    # A host (see mmiobus.devices.host) attaches the device, hands it the accesses to its
    # regions and asks it to reset; device models do not call these themselves.

    async def _dma(
        self,
        address_space: str,
        addr: int,
        size: int | None,
        data: bytes | None,
        attrs: MemTxAttrs | None,
    ) -> tuple[bytes, MemTxResult]:
        if self._host is None:
            raise RuntimeError("the device is not attached to a bus")
        cur = _CURRENT.get()
        request = DmaRequest(
            address_space,
            addr,
            len(data) if data is not None else (size or 0),
            data,
            attrs or MemTxAttrs(requester_id=self.requester_id),
            cur.access_id if cur is not None else None,
        )
        return await self._host.dma(request)

    async def bind(self, host: Host, regions: list[RegionInfo]) -> None:
        """The host attached the device: it serves ``regions`` from now on. Raises the lines
        that are already high on the host, then runs ``start``."""
        self._host = host
        self.regions = regions
        for irq in self._irqs.values():
            if irq.level:
                host.set_irq(irq.line, True)
        out = self.start()
        if out is not None:
            await out

    async def unbind(self) -> None:
        """The host detached the device: runs ``stop``."""
        try:
            out = self.stop()
            if out is not None:
                await out
        finally:
            self._host = None

    async def perform_reset(self) -> None:
        """The bus asked for a reset: runs ``reset``."""
        out = self.reset()
        if out is not None:
            await out

    def serve(
        self,
        region: RegionInfo,
        offset: int,
        size: int,
        write: bool,
        value: int,
        attrs: MemTxAttrs,
        access_id: int | None,
    ) -> Any:
        """Run a handler for one access. The answer, normalised once for every host: a read's
        value fitted to ``size`` bytes, or ``(value, MemTxResult)``; a write's ``None`` or
        ``MemTxResult``; or, for an async handler, a coroutine giving that answer. A handler
        that raises raises here (the host answers MEMTX_ERROR)."""
        cur = _Current(region, access_id, attrs)
        token = _CURRENT.set(cur)
        try:
            out = self.write(offset, size, value) if write else self.read(offset, size)
        finally:
            _CURRENT.reset(token)
        if out is not None and hasattr(out, "__await__"):
            return self._finish(out, cur, size, write)
        return _answer(out, size, write)

    async def _finish(self, pending: Awaitable[Any], cur: _Current, size: int, write: bool) -> Any:
        token = _CURRENT.set(cur)
        try:
            out = await pending
        finally:
            _CURRENT.reset(token)
        return _answer(out, size, write)


def _answer(out: Any, size: int, write: bool) -> Any:
    """A handler's return value as the bus wants it: a read's value fitted to ``size`` bytes
    (or (value, MemTxResult)); a write's None or MemTxResult."""
    mask = (1 << (8 * size)) - 1
    if write:
        return None if out is None else MemTxResult(int(out) & 7)
    if isinstance(out, tuple):
        value, result = out
        return int(value) & mask, MemTxResult(int(result) & 7)
    return int(out or 0) & mask
