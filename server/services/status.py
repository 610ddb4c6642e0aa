"""Where errors become gRPC status codes — the one place that decides.

Domain errors (``mmiobus.server.errors``), the memory model's errors, description and
validation errors each map to one code; anything else is a bug, logged with its traceback and
answered INTERNAL.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pydantic
import structlog
from mmiobus.machine.errors import DescriptionError
from mmiobus.memory.errors import (
    AlreadyExistsError,
    CycleError,
    InUseError,
    InvalidArgumentError,
    MemoryModelError,
    NotFoundError,
    NotMappedError,
    RegionInUseError,
    RenderWorkError,
    TransactionError,
)

from .. import errors

log = structlog.get_logger("mmiobus.server")

_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (RegionInUseError, grpc.StatusCode.FAILED_PRECONDITION),
    (NotMappedError, grpc.StatusCode.FAILED_PRECONDITION),
    (CycleError, grpc.StatusCode.FAILED_PRECONDITION),
    (InUseError, grpc.StatusCode.FAILED_PRECONDITION),
    (TransactionError, grpc.StatusCode.FAILED_PRECONDITION),
    (RenderWorkError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (DescriptionError, grpc.StatusCode.INVALID_ARGUMENT),
    (pydantic.ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (MemoryModelError, grpc.StatusCode.INVALID_ARGUMENT),
]


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status and message for an error the domain (or validation) raised, or ``None`` for
    an unexpected error (a bug: the caller logs it and answers INTERNAL)."""
    if isinstance(error, errors.Reworded):
        cause = status_of(error.cause)
        return (cause[0], str(error)) if cause is not None else None
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code, str(error)
    return None


def status_or_internal(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """``status_of``, or INTERNAL (logged with its traceback) for an unexpected error."""
    status = status_of(error)
    if status is None:
        log.error("internal error", error=repr(error), exc_info=error)
        return (
            grpc.StatusCode.INTERNAL,
            f"internal error: {error!r} (a bug; see the server log)",
        )
    return status


async def abort(context: grpc.aio.ServicerContext, error: BaseException) -> None:
    """End the RPC with the status ``error`` maps to."""
    if isinstance(error, grpc.aio.AbortError):
        raise error
    await context.abort(*status_or_internal(error))


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def answers_errors(method: Handler) -> Handler:
    """A unary handler whose domain errors end the call with their status code."""

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await abort(context, e)

    return handler  # type: ignore[return-value]
