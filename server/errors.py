"""What the server refuses, as domain errors. ``services/status.py`` is the one place that maps
them (and the memory model's and descriptions' errors) to gRPC status codes; nothing else
chooses a status code."""

from __future__ import annotations


class ServerError(Exception):
    """A request the server refuses; the message names the field and value at fault."""


class InvalidRequest(ServerError):
    """The request is malformed (INVALID_ARGUMENT)."""


class NotFound(ServerError):
    """A named thing does not exist (NOT_FOUND)."""


class AlreadyExists(ServerError):
    """The name or region is taken (ALREADY_EXISTS)."""


class Conflict(ServerError):
    """The bus's state does not allow it (FAILED_PRECONDITION)."""


class PermissionDenied(ServerError):
    """The caller may not do this (PERMISSION_DENIED)."""


class Unauthenticated(ServerError):
    """The caller's credentials are missing or wrong (UNAUTHENTICATED)."""


class LimitExceeded(ServerError):
    """The request is larger than a limit of the server (RESOURCE_EXHAUSTED)."""


class Unavailable(ServerError):
    """What the request needs went away (UNAVAILABLE), e.g. a device that left."""


class Reworded(ServerError):
    """Another error with a message that says more (which operation of a transaction failed,
    say); it keeps the status of ``cause``."""

    def __init__(self, cause: BaseException, message: str) -> None:
        super().__init__(message)
        self.cause = cause
