"""What runs a device: the seam between a ``Device`` and whatever connects it to a bus.

Three hosts implement it: ``DirectHost`` (``mmiobus.devices.direct``: a bare memory system in
this process, for tests and embedding), the server's in-process host (a machine description's
``device: {class: ...}``) and ``RemoteHost`` (``mmiobus.devices.runner``: a device process
attached over gRPC). A device behaves the same on each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from mmiobus.memory.access import Endianness, MemTxAttrs, MemTxResult


@dataclass(frozen=True)
class RegionInfo:
    """A region the device serves, as the bus will use it."""

    id: str
    size: int
    byteorder: str  # "little" or "big": how a value's bytes lie on the bus
    posted_writes: bool = False
    romd: bool = False


def byteorder_of(endianness: Endianness, native_big: bool) -> str:
    """``"big"`` or ``"little"``: a region's byte order with ``native`` resolved to the
    machine's."""
    big = endianness is Endianness.BIG or (endianness is Endianness.NATIVE and native_big)
    return "big" if big else "little"


@dataclass(frozen=True, slots=True)
class DmaRequest:
    """One DMA access a device makes: a read of ``size`` bytes (``data`` is None) or a write of
    ``data``. ``on_behalf_of`` is the id of the access the device is serving while it makes
    this one (None outside handlers): the bus follows it to refuse re-entrant cycles."""

    address_space: str
    addr: int
    size: int
    data: bytes | None
    attrs: MemTxAttrs
    on_behalf_of: int | None = None

    @property
    def is_write(self) -> bool:
        return self.data is not None


class Host(Protocol):
    """The host a device is attached to (see the module docstring)."""

    name: str

    async def dma(self, request: DmaRequest) -> tuple[bytes, MemTxResult]:
        """Run a DMA access: the bytes read (b"" for a write) and its result. A refusal (an
        unknown address space, a request above the bus's limits) is a bus fault, not an
        exception."""
        ...

    def set_irq(self, line: str, level: bool) -> None:
        """Set interrupt line ``line`` of the device (the bus calls it DEVICE.LINE)."""
        ...

    def pulse_irq(self, line: str) -> None:
        """Raise and lower line ``line`` at once."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task of the device, outside any access's causal chain."""
        ...
