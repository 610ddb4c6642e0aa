"""How a command fails: one line on standard error and an exit status that says what kind of
failure it was (scripts test the status, people read the line)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # the command could not do what was asked (and says why)
EXIT_USAGE = 2  # the command line itself is wrong
EXIT_FAULT = 3  # the bus answered with a fault (a MemTxResult other than OK)
EXIT_DIFFERENT = 4  # `replay` found accesses that now end differently
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class CommandError(Exception):
    """A failure to report as one line (no traceback), with exit status 1. ``label`` starts
    the line: ``mmiobus CMD: error: ...``."""

    exit_status = EXIT_ERROR
    label = "error"


class UsageError(CommandError):
    """A command line that cannot be carried out as written (exit status 2)."""

    exit_status = EXIT_USAGE


class Fault(CommandError):
    """The bus answered an access with a fault: ``mmiobus CMD: bus fault: ...``, exit status 3.
    ``result`` names the MemTxResult (``DECODE_ERROR``)."""

    exit_status = EXIT_FAULT
    label = "bus fault"

    def __init__(self, message: str, result: str = "") -> None:
        super().__init__(message)
        self.result = result
