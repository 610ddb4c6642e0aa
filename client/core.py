"""What the blocking and the asyncio clients share: addresses, access messages, results,
typed values and topology operations. No I/O here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.memory.addrspace import ReadResult
from mmiobus.v1 import bus_pb2 as pb

from .errors import BusFault

DEFAULT_SERVER = "127.0.0.1:7170"
_RESULTS = tuple(MemTxResult(i) for i in range(8))


def default_server() -> str:
    """``$MMIOBUS_SERVER``, else the address `mmiobus serve` listens on by default."""
    return os.environ.get("MMIOBUS_SERVER") or DEFAULT_SERVER


def channel_target(address: str) -> str:
    """A gRPC target for ``HOST:PORT``, ``[::1]:PORT`` or ``unix:PATH``."""
    if address.startswith("unix:") and not address.startswith("unix://"):
        path = address.removeprefix("unix:")
        return f"unix:{os.path.abspath(path)}"
    return address


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


Access = Read | Write


def attrs_to_pb(attrs: MemTxAttrs) -> pb.Attrs:
    return pb.Attrs(
        requester_id=attrs.requester_id, secure=attrs.secure, user=attrs.user, memory=attrs.memory
    )


class Requests:
    """Builds access messages with a connection's defaults (address space, attributes)."""

    def __init__(self, address_space: str = "", attrs: MemTxAttrs | None = None) -> None:
        self.address_space = address_space
        self.attrs = attrs_to_pb(attrs) if attrs else None

    def read(
        self,
        rid: int,
        addr: int,
        size: int,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> pb.RwRequest:
        _check_addr(addr)
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative integer, not {size!r}")
        req = pb.RwRequest(
            id=rid,
            address_space=self.address_space if address_space is None else address_space,
            addr=addr,
            read=size,
        )
        a = attrs_to_pb(attrs) if attrs is not None else self.attrs
        if a is not None:
            req.attrs.CopyFrom(a)
        return req

    def write(
        self,
        rid: int,
        addr: int,
        data: bytes,
        address_space: str | None = None,
        attrs: MemTxAttrs | None = None,
    ) -> pb.RwRequest:
        _check_addr(addr)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        req = pb.RwRequest(
            id=rid,
            address_space=self.address_space if address_space is None else address_space,
            addr=addr,
            write=bytes(data),
        )
        a = attrs_to_pb(attrs) if attrs is not None else self.attrs
        if a is not None:
            req.attrs.CopyFrom(a)
        return req

    def access(self, rid: int, access: Access) -> pb.RwRequest:
        if isinstance(access, Read):
            return self.read(rid, access.addr, access.size, access.address_space, access.attrs)
        if isinstance(access, Write):
            return self.write(rid, access.addr, access.data, access.address_space, access.attrs)
        raise TypeError(f"expected Read or Write, not {access!r}")


def _check_addr(addr: int) -> None:
    if not isinstance(addr, int) or not 0 <= addr < 1 << 64:
        raise ValueError(f"address {addr!r} is not in 0..2**64-1")


def read_outcome(req: pb.RwRequest, resp: pb.RwResponse, check: bool, index: int | None = None):
    """What a read returns: the bytes (raising BusFault on a fault) or a ReadResult."""
    result = _RESULTS[resp.result & 7]
    if check:
        if result:
            raise BusFault(req.addr, req.read, result, False, req.address_space, index)
        return resp.data
    return ReadResult(resp.data, result)


def write_outcome(req: pb.RwRequest, resp: pb.RwResponse, check: bool, index: int | None = None):
    """What a write returns: None (raising BusFault on a fault) or the MemTxResult."""
    result = _RESULTS[resp.result & 7]
    if check:
        if result:
            raise BusFault(req.addr, len(req.write), result, True, req.address_space, index)
        return None
    return result


def outcome(req: pb.RwRequest, resp: pb.RwResponse, check: bool, index: int | None = None) -> Any:
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


def byteorder(info: pb.Info) -> str:
    return "big" if info.endianness == pb.BIG else "little"


def encode_value(value: int, size: int, order: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{value!r} does not fit in {size} byte{'s' if size > 1 else ''}")
    return value.to_bytes(size, order)  # type: ignore[arg-type]
