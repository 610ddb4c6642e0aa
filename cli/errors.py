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
    """A failure to report as one line (no traceback), with exit status 1."""

    exit_status = EXIT_ERROR


class UsageError(CommandError):
    """A command line that cannot be carried out as written (exit status 2)."""

    exit_status = EXIT_USAGE
