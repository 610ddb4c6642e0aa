"""What a region declared for a device answers while that device is not attached (its
description's ``absent``): ``error`` (MEMTX_ERROR), ``unassigned`` (as if no device were
declared) or ``ram`` (scratch memory, kept across detach and attach)."""

from __future__ import annotations

from mmiobus.machine.regions import constraints
from mmiobus.machine.schema import MmioSpec, RomdSpec
from mmiobus.memory.access import (
    MEMTX_ERROR,
    AccessConstraints,
    Endianness,
    MemoryRegionOps,
    MemTxAttrs,
)
from mmiobus.memory.region import MemoryRegion

MAX_SCRATCH = 1 << 24  # the most scratch memory one region keeps (larger ones read 0 beyond)


class AbsentDevices:
    """Applies ``absent`` behaviours; owns the scratch memory of ``absent: ram`` regions."""

    def __init__(self) -> None:
        self._scratch: dict[MemoryRegion, bytearray] = {}

    def apply(self, mr: MemoryRegion, spec: MmioSpec | RomdSpec) -> None:
        """Set ``mr``'s ops to what ``spec`` says it answers while its device is away."""
        if spec.absent == "unassigned":
            mr.set_ops(None)
            return
        valid, impl = constraints(spec.valid), constraints(spec.impl)
        if spec.absent == "ram":
            mr.set_ops(self._scratch_ops(mr, valid, impl))
            return
        mr.set_ops(
            MemoryRegionOps(
                read=lambda o, s, a: (0, MEMTX_ERROR),
                write=lambda o, s, v, a: MEMTX_ERROR,
                endianness=Endianness(spec.endianness),
                valid=valid,
                impl=impl,
            )
        )

    def forget(self, mr: MemoryRegion) -> None:
        """The region was deleted: drop its scratch memory."""
        self._scratch.pop(mr, None)

    def _scratch_ops(
        self, mr: MemoryRegion, valid: AccessConstraints, impl: AccessConstraints
    ) -> MemoryRegionOps:
        backing = self._scratch.get(mr)
        if backing is None:
            backing = self._scratch[mr] = bytearray(min(mr.size, MAX_SCRATCH))

        def read(offset: int, size: int, attrs: MemTxAttrs) -> int:
            chunk = bytes(backing[offset : offset + size]).ljust(size, b"\0")
            return int.from_bytes(chunk, "little")

        def write(offset: int, size: int, value: int, attrs: MemTxAttrs) -> None:
            if offset < len(backing):
                end = min(offset + size, len(backing))
                backing[offset:end] = value.to_bytes(size, "little")[: end - offset]

        return MemoryRegionOps(
            read=read,
            write=write,
            endianness=Endianness.LITTLE,
            valid=valid,
            impl=impl,
        )
