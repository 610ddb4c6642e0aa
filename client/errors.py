"""What the client raises: bus faults (the bus answered, with a MemTxResult) and RPC failures
(the request could not be carried out), each with a message that says what to do."""

from __future__ import annotations

import grpc
from mmiobus.endpoints import unreachable
from mmiobus.memory.access import MemTxResult
from mmiobus.wire import result_names


class BusError(Exception):
    """Base of every client error."""


class BusFault(BusError):
    """An access completed with a MemTxResult other than OK (the bus answered: this is what a CPU
    would see). Carries the address, size and result; pass ``check=False`` to get results
    instead of exceptions."""

    def __init__(
        self,
        addr: int,
        size: int,
        result: MemTxResult,
        is_write: bool,
        address_space: str = "",
        index: int | None = None,
    ) -> None:
        self.addr = addr
        self.size = size
        self.result = MemTxResult(result)
        self.is_write = is_write
        self.address_space = address_space
        self.index = index
        what = "write" if is_write else "read"
        where = f" in {address_space!r}" if address_space else ""
        which = f"access {index}: " if index is not None else ""
        super().__init__(
            f"{which}{what} of {size} byte{'s' if size != 1 else ''} at {addr:#x}{where} "
            f"failed: {result_names(self.result)}"
        )


class RpcFailure(BusError):
    """The server refused or could not carry out a request."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None, details: str = ""):
        super().__init__(message)
        self.code = code
        self.details = details


class ServerUnavailable(RpcFailure):
    """No server answers at the address (not running, wrong address, or network trouble)."""


class Timeout(RpcFailure):
    """The call did not finish before its deadline."""


class InvalidRequest(RpcFailure):
    """The server found the request malformed (INVALID_ARGUMENT)."""


class NotFound(RpcFailure):
    """An address space, region or device named in the request does not exist."""


class Conflict(RpcFailure):
    """The request conflicts with the bus's state (ALREADY_EXISTS, FAILED_PRECONDITION)."""


class LimitExceeded(RpcFailure):
    """The request is larger than a server limit (RESOURCE_EXHAUSTED)."""


class PermissionDenied(RpcFailure):
    """The credentials do not allow this (PERMISSION_DENIED, UNAUTHENTICATED)."""


_BY_CODE: dict[grpc.StatusCode, type[RpcFailure]] = {
    grpc.StatusCode.UNAVAILABLE: ServerUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Timeout,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.OUT_OF_RANGE: InvalidRequest,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LimitExceeded,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: PermissionDenied,
}


def from_rpc_error(error: grpc.RpcError, target: str) -> RpcFailure:
    """A client exception for a failed call to ``target``, with advice where there is some."""
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else "") or ""
    cls = _BY_CODE.get(code, RpcFailure) if code is not None else RpcFailure
    if cls is ServerUnavailable:
        message = unreachable(target, details)
    elif cls is Timeout:
        message = f"the server at {target} did not answer in time: {details}"
    elif cls is PermissionDenied:
        message = f"the server at {target} refused: {details} (check your credentials)"
    elif code == grpc.StatusCode.UNIMPLEMENTED:
        message = (
            f"the server at {target} does not implement this call (is it an mmiobus server of "
            f"a compatible version?): {details}"
        )
    else:
        message = details or (code.name if code is not None else str(error))
    return cls(message, code, details)
