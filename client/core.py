"""What the blocking and the asyncio clients share: access messages built with a connection's
defaults, their outcomes, batches cut to the server's limits, typed values, and the
``read``/``write`` face of both streams. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from mmiobus import wire
from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.memory.addrspace import ReadResult
from mmiobus.v1 import bus_pb2 as pb

from .errors import BusFault

ByteOrder = Literal["little", "big"]


@dataclass(frozen=True, slots=True)
class Read:
    """A read of ``size`` bytes, for batches."""

    addr: int
    size: int
    address_space: str | None = None
    attrs: MemTxAttrs | None = None


@dataclass(frozen=True, slots=True)
class Write:
    """A write of ``data``, for batches."""

    addr: int
    data: bytes
    address_space: str | None = None
    attrs: MemTxAttrs | None = None


BatchAccess = Read | Write
"""One access of ``batch()``: a ``Read`` or a ``Write``."""


class Requests:
    """Builds access messages with a connection's defaults (address space, attributes)."""

    def __init__(self, address_space: str = "", attrs: MemTxAttrs | None = None) -> None:
        self.address_space = address_space
        self.attrs = attrs

    def _new(
        self, rid: int, addr: int, address_space: str | None, attrs: MemTxAttrs | None
    ) -> pb.RwRequest:
        if not isinstance(addr, int) or not 0 <= addr < 1 << 64:
            raise ValueError(f"address {addr!r} is not in 0..2**64-1")
        req = pb.RwRequest(
            id=rid,
            address_space=self.address_space if address_space is None else address_space,
            addr=addr,
        )
        chosen = self.attrs if attrs is None else attrs
        if chosen is not None:
            wire.set_attrs(req, chosen)
        return req

    def read(
        self,
        rid: int,
        addr: int,
        size: int,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> pb.RwRequest:
        """A read of ``size`` bytes at ``addr`` (``ValueError`` for a bad address or size)."""
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative integer, not {size!r}")
        req = self._new(rid, addr, address_space, attrs)
        req.read = size
        return req

    def write(
        self,
        rid: int,
        addr: int,
        data: bytes,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> pb.RwRequest:
        """A write of ``data`` at ``addr`` (``TypeError`` unless ``data`` is bytes-like)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        req = self._new(rid, addr, address_space, attrs)
        req.write = bytes(data)
        return req

    def access(self, rid: int, access: BatchAccess) -> pb.RwRequest:
        """The message for one ``Read`` or ``Write`` of a batch."""
        if isinstance(access, Read):
            return self.read(rid, access.addr, access.size, access.address_space, access.attrs)
        if isinstance(access, Write):
            return self.write(rid, access.addr, access.data, access.address_space, access.attrs)
        raise TypeError(f"expected Read or Write, not {access!r}")


def read_outcome(
    req: pb.RwRequest, resp: pb.RwResponse, check: bool, index: int | None = None
) -> bytes | ReadResult:
    """What a read returns: the bytes (raising BusFault on a fault) or a ReadResult."""
    result = wire.result_from_pb(resp.result)
    if check:
        if result:
            raise BusFault(req.addr, req.read, result, False, req.address_space, index)
        return resp.data
    return ReadResult(resp.data, result)


def write_outcome(
    req: pb.RwRequest, resp: pb.RwResponse, check: bool, index: int | None = None
) -> MemTxResult | None:
    """What a write returns: None (raising BusFault on a fault) or the MemTxResult."""
    result = wire.result_from_pb(resp.result)
    if check:
        if result:
            raise BusFault(req.addr, len(req.write), result, True, req.address_space, index)
        return None
    return result


def outcome(req: pb.RwRequest, resp: pb.RwResponse, check: bool, index: int | None = None) -> Any:
    """``read_outcome`` or ``write_outcome``, as ``req`` is a read or a write."""
    if req.WhichOneof("op") == "read":
        return read_outcome(req, resp, check, index)
    return write_outcome(req, resp, check, index)


def split_batches(requests: list[pb.RwRequest], limits: pb.Limits) -> list[list[pb.RwRequest]]:
    """Cut a long list of accesses into messages within the server's limits (order kept):
    accesses per message, bytes read and written per message, and the encoded message size."""
    max_accesses = limits.max_batch_accesses or 1 << 31
    max_bytes = limits.max_batch_bytes or 1 << 62
    # Room for the message's own framing; each access costs its encoding plus tag and length.
    max_message = (limits.max_message_bytes or 1 << 62) - 64
    out: list[list[pb.RwRequest]] = [[]]
    size = encoded = 0
    for req in requests:
        n = req.read if req.WhichOneof("op") == "read" else len(req.write)
        e = req.ByteSize() + 6
        if out[-1] and (
            len(out[-1]) >= max_accesses or size + n > max_bytes or encoded + e > max_message
        ):
            out.append([])
            size = encoded = 0
        out[-1].append(req)
        size += n
        encoded += e
    return out


# -- typed values ----------------------------------------------------------------------------

WIDTHS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}


def byteorder(info: pb.Info) -> ByteOrder:
    """The byte order of the machine ``info`` describes."""
    return "big" if wire.byteorder(info.endianness) == "big" else "little"


def encode_value(value: int, size: int, order: ByteOrder) -> bytes:
    """``value`` as ``size`` bytes in ``order`` (``ValueError`` if it does not fit)."""
    if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{value!r} does not fit in {size} byte{'s' if size > 1 else ''}")
    return value.to_bytes(size, order)


# -- the read/write face of a stream -----------------------------------------------------------

F = TypeVar("F")


class StreamAccesses(Generic[F]):
    """``read``/``write`` for a pipelined stream: each builds its message with the connection's
    defaults and hands it to ``submit``, which returns a future of the stream's kind."""

    def __init__(self, requests: Requests) -> None:
        self._requests = requests

    def read(
        self,
        addr: int,
        size: int,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> F:
        """Queue a read; the future resolves to the bytes (or, with ``check=False``, a
        ``ReadResult``)."""
        return self.submit(self._requests.read(0, addr, size, address_space, attrs), check)

    def write(
        self,
        addr: int,
        data: bytes,
        *,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
        check: bool = True,
    ) -> F:
        """Queue a write; the future resolves to None (or, with ``check=False``, the
        ``MemTxResult``)."""
        return self.submit(self._requests.write(0, addr, data, address_space, attrs), check)

    def submit(self, req: pb.RwRequest, check: bool = True) -> F:
        """Queue a prepared access; the future resolves to its outcome."""
        raise NotImplementedError
