"""mmiobus's Python clients: a blocking `Bus` and an asyncio `AsyncBus` with the same methods
(`Bus` runs an `AsyncBus` on a thread of its own). The `mmiobus` command line is `mmiobus.cli`.

from mmiobus.client import Bus

with Bus("127.0.0.1:7170") as bus:
    bus.write(0x1000, b"\\x2a")
    assert bus.read(0x1000, 1) == b"\\x2a"
"""

from mmiobus.memory.access import MemTxAttrs, MemTxResult
from mmiobus.memory.addrspace import ReadResult

from .aio import AsyncBus, AsyncStream
from .core import BatchAccess, Read, Write
from .errors import (
    BusError,
    BusFault,
    Conflict,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    RpcFailure,
    ServerUnavailable,
    Timeout,
)
from .sync import Bus, Stream
from .topology import Transaction

__all__ = [
    "AsyncBus",
    "AsyncStream",
    "BatchAccess",
    "Bus",
    "BusError",
    "BusFault",
    "Conflict",
    "InvalidRequest",
    "LimitExceeded",
    "MemTxAttrs",
    "MemTxResult",
    "NotFound",
    "PermissionDenied",
    "Read",
    "ReadResult",
    "RpcFailure",
    "ServerUnavailable",
    "Stream",
    "Timeout",
    "Transaction",
    "Write",
]
