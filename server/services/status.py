"""Where model errors become gRPC status codes — the one place that decides."""

from __future__ import annotations

import grpc
import pydantic
from mmiobus.machine.description import DescriptionError
from mmiobus.memory.errors import (
    AlreadyExistsError,
    CycleError,
    InUseError,
    InvalidArgumentError,
    MemoryModelError,
    NotFoundError,
    NotMappedError,
    RegionInUseError,
    TransactionError,
)


class RpcError(Exception):
    """Abort the current RPC with ``code`` and ``message`` (raised by request validation)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, message)


def limit(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (RpcError, grpc.StatusCode.UNKNOWN),  # replaced by its own code below
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (RegionInUseError, grpc.StatusCode.FAILED_PRECONDITION),
    (NotMappedError, grpc.StatusCode.FAILED_PRECONDITION),
    (CycleError, grpc.StatusCode.FAILED_PRECONDITION),
    (InUseError, grpc.StatusCode.FAILED_PRECONDITION),
    (TransactionError, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (DescriptionError, grpc.StatusCode.INVALID_ARGUMENT),
    (pydantic.ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (MemoryModelError, grpc.StatusCode.INVALID_ARGUMENT),
]


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status and message for an error the model (or validation) raised, or ``None`` for
    an unexpected error (a bug: the caller logs it and answers INTERNAL)."""
    if isinstance(error, RpcError):
        return error.code, error.message
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code, str(error)
    return None
