"""What ``mmiobus up`` prints: every process's lines, prefixed with its name (in a colour of its
own at a terminal), its own messages, and a status line — redrawn in place at the bottom of a
terminal, or printed now and then into a log."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import IO

# ANSI colours for the processes' names, in turn; the bus is always the first.
_COLOURS = ("36", "33", "35", "32", "34", "91", "96", "93", "95", "92", "94")
_DIM, _BOLD, _RESET = "\033[2m", "\033[1m", "\033[0m"
STATUS_MODES = ("auto", "live", "lines", "off")


class Output:
    """Lines from processes and from ``up`` itself, and the status line.

    ``status``: ``live`` redraws one line at the bottom (a terminal), ``lines`` prints it as a
    line every ``every`` seconds, ``off`` never shows it; ``auto`` is live at a terminal, else
    lines."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        color: bool | None = None,
        status: str = "auto",
        every: float = 10.0,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        tty = self.stream.isatty()
        if color is None:
            color = tty and not os.environ.get("NO_COLOR")
        self.color = color
        self.mode = ("live" if tty else "lines") if status == "auto" else status
        self.every = every
        self.width = 6
        self._colours: dict[str, str] = {}
        self._status = ""
        self._shown = False  # the live status line is on screen
        self._last_line_status = 0.0

    def name_width(self, names: list[str]) -> None:
        """Align prefixes for these names."""
        self.width = max([self.width, *map(len, names)])

    def _prefix(self, name: str) -> str:
        text = f"{name:<{self.width}} │ "
        if not self.color:
            return text
        colour = self._colours.get(name)
        if colour is None:
            colour = self._colours[name] = _COLOURS[len(self._colours) % len(_COLOURS)]
        return f"\033[{colour}m{text}{_RESET}"

    def line(self, name: str, text: str) -> None:
        """One line a process printed."""
        self._write(self._prefix(name) + text.rstrip("\n"))

    def say(self, text: str) -> None:
        """One line of ``up``'s own."""
        prefix = f"{'up':<{self.width}} │ "
        if self.color:
            prefix = f"{_BOLD}{prefix}{_RESET}"
        self._write(prefix + text)

    def status(self, text: str) -> None:
        """The status now: redrawn (live), or printed when its time has come (lines)."""
        self._status = text
        if self.mode == "live":
            self._draw()
        elif self.mode == "lines":
            now = time.monotonic()
            if now - self._last_line_status >= self.every:
                self._last_line_status = now
                self.say(text)

    def close(self) -> None:
        """Take the live status line off the screen."""
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False

    def _write(self, text: str) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self._shown = False
        self.stream.write(text + "\n")
        if self.mode == "live" and self._status:
            self._draw(flush=False)
        self.stream.flush()

    def _draw(self, flush: bool = True) -> None:
        # Cut to the terminal's width: a line that wraps could not be redrawn in place.
        text = self._status[: max(20, shutil.get_terminal_size().columns - 1)]
        if self.color:
            text = f"{_DIM}{text}{_RESET}"
        self.stream.write("\r\033[K" + text)
        self._shown = True
        if flush:
            self.stream.flush()
