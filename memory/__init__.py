"""mmiobus's memory model: QEMU's region trees, address spaces, flat views and dispatch.

Pure Python with no network code, usable on its own::

    from mmiobus.memory import MemorySystem

    sys = MemorySystem()
    system = sys.container("system", 2**64)
    system.add_subregion(0, sys.ram("ram", 0x1000))
    memory = sys.address_space("memory", system)
    memory.write(0x10, b"\\x2a")
    assert memory.read(0x10, 1).data == b"\\x2a"

The gRPC service lives in ``mmiobus.server.services`` and is imported only by the server.
"""

from .access import (
    MEMTX_ACCESS_ERROR,
    MEMTX_DECODE_ERROR,
    MEMTX_ERROR,
    MEMTX_OK,
    MEMTXATTRS_UNSPECIFIED,
    UNASSIGNED_IO_OPS,
    UNASSIGNED_MEM_OPS,
    AccessConstraints,
    Endianness,
    MemoryRegionOps,
    MemTxAttrs,
    MemTxResult,
)
from .addrspace import AddressSpace, ReadResult
from .errors import (
    AsyncOpsError,
    CycleError,
    InvalidArgumentError,
    MemoryModelError,
    NotMappedError,
    RegionInUseError,
    RenderWorkError,
    TransactionError,
)
from .flatview import FlatRange, FlatView, flatview_root, render
from .listener import MemoryListener, MemoryRegionSection
from .mtree import mtree
from .region import MemoryRegion, RegionKind, Unassigned
from .system import MemorySystem

__all__ = [
    "MEMTXATTRS_UNSPECIFIED",
    "MEMTX_ACCESS_ERROR",
    "MEMTX_DECODE_ERROR",
    "MEMTX_ERROR",
    "MEMTX_OK",
    "UNASSIGNED_IO_OPS",
    "UNASSIGNED_MEM_OPS",
    "AccessConstraints",
    "AddressSpace",
    "AsyncOpsError",
    "CycleError",
    "Endianness",
    "FlatRange",
    "FlatView",
    "InvalidArgumentError",
    "MemTxAttrs",
    "MemTxResult",
    "MemoryListener",
    "MemoryModelError",
    "MemoryRegion",
    "MemoryRegionOps",
    "MemoryRegionSection",
    "MemorySystem",
    "NotMappedError",
    "ReadResult",
    "RegionInUseError",
    "RegionKind",
    "RenderWorkError",
    "TransactionError",
    "Unassigned",
    "flatview_root",
    "mtree",
    "render",
]
