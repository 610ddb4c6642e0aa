"""Interrupt lines: named levels that devices set and anyone can read or watch.

A line is called ``DEVICE.LINE`` (``uart0.irq``). Setting it to the level it already has is not
a change; a pulse is a raise followed by a lower. Watchers get every change through a callback,
called synchronously in the order the changes happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from .names import compile_globs

log = structlog.get_logger("mmiobus.irq")


@dataclass
class IrqLine:
    name: str
    level: bool = False
    changes: int = 0


Watcher = Callable[[IrqLine, int], None]  # (line after the change, monotonic ns)


def matches(name: str, patterns: Iterable[str]) -> bool:
    """True if ``name`` matches any glob in ``patterns`` (an empty list matches everything)."""
    return line_matcher(patterns)(name)


def line_matcher(patterns: Iterable[str], what: str = "lines") -> Callable[[str], bool]:
    """A test of line names against globs (no globs: every line), compiled once; globs beyond
    the bounds of ``mmiobus.server.names`` raise ``InvalidRequest`` naming ``what``."""
    match = compile_globs(patterns, what)
    return match if match is not None else _every_line


def _every_line(_name: str) -> bool:
    return True


class IrqRegistry:
    """Every interrupt line of the bus."""

    def __init__(self) -> None:
        self.lines: dict[str, IrqLine] = {}
        self._watchers: list[Watcher] = []

    def line(self, name: str) -> IrqLine:
        """The line called ``name`` (created, low, when first used)."""
        line = self.lines.get(name)
        if line is None:
            line = self.lines[name] = IrqLine(name)
        return line

    def set(self, name: str, level: bool) -> bool:
        """Set a line's level; returns True if that changed it."""
        line = self.line(name)
        level = bool(level)
        if line.level == level:
            return False
        line.level = level
        line.changes += 1
        self._notify(line)
        return True

    def pulse(self, name: str) -> None:
        """Raise then lower (a line already high is lowered, raised and lowered again)."""
        if self.line(name).level:
            self.set(name, False)
        self.set(name, True)
        self.set(name, False)

    def select(self, patterns: Iterable[str] | Callable[[str], bool] = ()) -> list[IrqLine]:
        """The lines matching ``patterns`` (globs, or a ``line_matcher``), by name."""
        match = patterns if callable(patterns) else line_matcher(patterns)
        return sorted((ln for ln in self.lines.values() if match(ln.name)), key=lambda ln: ln.name)

    def forget_device(self, device: str, others: Iterable[str] = ()) -> None:
        """A device left: its lines (``DEVICE.*``) go low, watchers seeing each drop, and are
        forgotten; they come back when a device of that name sets them again. ``others``: the
        devices still attached, whose lines stay even when their names start with ``DEVICE.``
        (device ``a`` leaving keeps the lines of device ``a.b``)."""
        prefix = f"{device}."
        kept = tuple(f"{other}." for other in others if other.startswith(prefix))
        gone = [n for n in self.lines if n.startswith(prefix) and not n.startswith(kept)]
        for name in gone:
            self.set(name, False)
        for name in gone:
            self.lines.pop(name, None)

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher`` on every change; returns the function that stops it."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher) if watcher in self._watchers else None

    def _notify(self, line: IrqLine) -> None:
        now = time.monotonic_ns()
        for watcher in list(self._watchers):
            try:
                watcher(line, now)
            except Exception:
                log.exception("irq watcher failed", line=line.name)
