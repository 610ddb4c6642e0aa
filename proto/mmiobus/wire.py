"""Where mmiobus's vocabulary meets the wire: conversions between the memory model's values
(``MemTxAttrs``, ``MemTxResult``, ``Endianness``, ``RegionKind``, access sizes, region sizes)
and the ``mmiobus.v1`` messages, for the server, the clients, the device runner and the
benchmarks alike.

Sizes travel as uint64, where 0xffffffffffffffff means 2**64 (QEMU's convention: 2**64-1 is
never a region size). A malformed value raises ``InvalidArgumentError`` naming the field.
"""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from mmiobus.memory.access import (
    MASK64,
    MEMTXATTRS_UNSPECIFIED,
    TWO64,
    AccessConstraints,
    Endianness,
    MemTxAttrs,
    MemTxResult,
)
from mmiobus.memory.errors import InvalidArgumentError
from mmiobus.memory.region import RegionKind, Unassigned
from mmiobus.v1 import bus_pb2 as pb

# -- sizes -------------------------------------------------------------------------------------


def size_to_pb(size: int) -> int:
    """A region or range size for the wire: 2**64 travels as 0xffffffffffffffff."""
    return MASK64 if size >= TWO64 else size


def size_from_pb(size: int) -> int:
    """A size from the wire: 0xffffffffffffffff means 2**64."""
    return TWO64 if size == MASK64 else size


# -- attributes --------------------------------------------------------------------------------


def attrs_to_pb(attrs: MemTxAttrs) -> pb.Attrs:
    return pb.Attrs(
        requester_id=attrs.requester_id, secure=attrs.secure, user=attrs.user, memory=attrs.memory
    )


def attrs_are_default(attrs: MemTxAttrs) -> bool:
    """True when ``attrs`` need not travel (unset ``Attrs`` means all false / 0)."""
    return not (attrs.requester_id or attrs.secure or attrs.user or attrs.memory)


def attrs_from_pb(attrs: pb.Attrs, where: str = "request") -> MemTxAttrs:
    if attrs.requester_id > 0xFFFF:
        raise InvalidArgumentError(
            f"{where}.attrs.requester_id: {attrs.requester_id} does not fit in 16 bits"
        )
    if not (attrs.requester_id or attrs.secure or attrs.user or attrs.memory):
        return MEMTXATTRS_UNSPECIFIED
    return MemTxAttrs(attrs.requester_id, attrs.secure, attrs.user, attrs.memory)


def set_attrs(message: Any, attrs: MemTxAttrs) -> None:
    """Fill ``message.attrs`` (an ``RwRequest``, a ``DmaRequest``, ...) unless ``attrs`` are the
    defaults (which need not travel)."""
    if attrs.requester_id or attrs.secure or attrs.user or attrs.memory:
        message.attrs.CopyFrom(attrs_to_pb(attrs))


# -- results -----------------------------------------------------------------------------------

RESULTS = tuple(MemTxResult(i) for i in range(8))


def result_from_pb(value: int) -> MemTxResult:
    return RESULTS[value & 7]


def result_names(result: int) -> str:
    """``OK`` or the fault bits, e.g. ``DECODE_ERROR|ERROR``."""
    if not result:
        return "OK"
    return "|".join(b.name for b in MemTxResult if b and b & result and b.name)


# -- enums -------------------------------------------------------------------------------------

_ENDIANNESS: dict[Endianness, pb.Endianness] = {
    Endianness.NATIVE: pb.NATIVE,
    Endianness.LITTLE: pb.LITTLE,
    Endianness.BIG: pb.BIG,
}
_ENDIANNESS_BACK: dict[int, Endianness] = {v: k for k, v in _ENDIANNESS.items()}
_KINDS: dict[RegionKind, pb.RegionKind] = {
    RegionKind.CONTAINER: pb.CONTAINER,
    RegionKind.RAM: pb.RAM,
    RegionKind.ROM: pb.ROM,
    RegionKind.ROMD: pb.ROMD,
    RegionKind.MMIO: pb.MMIO,
    RegionKind.ALIAS: pb.ALIAS,
}
_KINDS_BACK: dict[int, RegionKind] = {v: k for k, v in _KINDS.items()}
_UNASSIGNED: dict[Unassigned, pb.Unassigned] = {
    Unassigned.MEMORY: pb.UNASSIGNED_MEMORY,
    Unassigned.IO: pb.UNASSIGNED_IO,
}
_UNASSIGNED_BACK: dict[int, Unassigned] = {v: k for k, v in _UNASSIGNED.items()}


def endianness_to_pb(endianness: Endianness | str) -> pb.Endianness:
    return _ENDIANNESS[Endianness(endianness)]


def endianness_from_pb(value: int) -> Endianness:
    """``NATIVE`` for an unknown value (a newer peer), as proto3 reads it."""
    return _ENDIANNESS_BACK.get(value, Endianness.NATIVE)


def kind_to_pb(kind: RegionKind | str) -> pb.RegionKind:
    return _KINDS[RegionKind(kind)]


def kind_from_pb(value: int) -> RegionKind | None:
    """The region kind, or ``None`` when unset (``REGION_KIND_UNSPECIFIED``) or unknown."""
    return _KINDS_BACK.get(value)


def unassigned_to_pb(unassigned: Unassigned | str) -> pb.Unassigned:
    return _UNASSIGNED[Unassigned(unassigned)]


def unassigned_from_pb(value: int) -> Unassigned:
    return _UNASSIGNED_BACK.get(value, Unassigned.MEMORY)


def byteorder(endianness: int) -> str:
    """``"big"`` or ``"little"`` for a resolved ``Endianness`` wire value (as in ``Info``)."""
    return "big" if endianness == pb.BIG else "little"


# -- access sizes ------------------------------------------------------------------------------


def access_spec_to_pb(spec: AccessConstraints) -> pb.AccessSpec:
    return pb.AccessSpec(
        min=spec.min_access_size, max=spec.max_access_size, unaligned=spec.unaligned
    )


def access_spec_from_pb(spec: pb.AccessSpec) -> dict[str, int | bool]:
    """The fields of an access spec, as a description entry writes them (validated there)."""
    return {"min": spec.min, "max": spec.max, "unaligned": spec.unaligned}


# -- limits and flat ranges --------------------------------------------------------------------


class LimitsLike(Protocol):
    @property
    def max_access_bytes(self) -> int: ...
    @property
    def max_batch_bytes(self) -> int: ...
    @property
    def max_batch_accesses(self) -> int: ...
    @property
    def max_topology_ops(self) -> int: ...
    @property
    def max_message_bytes(self) -> int: ...


def limits_to_pb(limits: LimitsLike) -> pb.Limits:
    return pb.Limits(
        max_access_bytes=limits.max_access_bytes,
        max_batch_bytes=limits.max_batch_bytes,
        max_batch_accesses=limits.max_batch_accesses,
        max_topology_ops=limits.max_topology_ops,
        max_message_bytes=limits.max_message_bytes,
    )


def flat_range_to_pb(
    start: int, size: int, region: str, offset: int, readonly: bool, nonvolatile: bool
) -> pb.FlatRange:
    return pb.FlatRange(
        start=start,
        size=size_to_pb(size),
        region=region,
        offset=offset,
        readonly=readonly,
        nonvolatile=nonvolatile,
    )


# -- status codes ------------------------------------------------------------------------------

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    """The gRPC status code with this number (``UNKNOWN`` for an unknown one)."""
    return _CODES.get(value, grpc.StatusCode.UNKNOWN)


def status_value(code: grpc.StatusCode) -> int:
    return int(code.value[0])


class CallStatus(grpc.RpcError):
    """A finished call's status as an ``RpcError`` (what ``code()``/``details()`` readers take)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details
