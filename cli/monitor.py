"""``mmiobus monitor``: an interactive session on a bus with QEMU monitor habits: ``info mtree
[-f] [-D]``, ``x``/``xp /FMT ADDR`` printed as QEMU prints them, ``info irqs``, ``info
devices``, ``info regions``, ``help``; history and completion at a terminal (prompt_toolkit),
one command per line from a pipe.

``Monitor.execute`` runs one line; ``run`` feeds it lines until ``quit``. Neither needs a
terminal, so the commands are tested by feeding lines in-process.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import args as a
from .console import out

if TYPE_CHECKING:
    from mmiobus.client import Bus

PROMPT = "(mmiobus) "
SIZES = {"b": 1, "h": 2, "w": 4, "g": 8, "L": 8}
FORMATS = "xduoci"
HELP = {
    "help": "help|? [cmd] -- show the commands, or one command's help",
    "info": "info [subcommand] -- show what the bus is (info alone lists the subcommands)",
    "x": "x /fmt addr -- memory dump starting at addr (the bus has no MMU: the same as xp)",
    "xp": "xp /fmt addr -- physical memory dump starting at addr",
    "quit": "quit|q -- quit the monitor (end of input does too)",
}
INFO = {
    "mtree": "info mtree [-f][-D] -- show the memory tree (-f: flat views, -D: disabled regions)",
    "irqs": "info irqs -- show the interrupt lines and their levels",
    "devices": "info devices -- show the attached devices",
    "regions": "info regions -- show the regions: kind, ranges, device, who serves them",
    "version": "info version -- show the version of the bus",
}
FMT_HELP = (
    "/fmt is /{count}{format}{size}: format x (hex), d (signed), u (unsigned), o (octal), "
    "c (char); size b (8 bits), h (16), w (32), g (64); e.g. x /4xw 0x1000"
)


class MonitorError(Exception):
    """A command line the monitor cannot run (printed, and the session goes on)."""


class Monitor:
    """The monitor's commands on ``bus``; output goes to ``write``. Remembers the last x/xp
    format and size, as QEMU does (initially hex words)."""

    def __init__(self, bus: Bus, write: Callable[[str], object]) -> None:
        self.bus = bus
        self.write = write
        self.format = "x"
        self.size = 4

    def execute(self, line: str) -> bool:
        """Run one command line; False once it asks to quit."""
        words = line.split()
        if not words or words[0].startswith("#"):
            return True
        command, rest = words[0], words[1:]
        if command in ("quit", "q"):
            return False
        try:
            if command in ("help", "?"):
                self._help(rest)
            elif command == "info":
                self._info(rest)
            elif command in ("x", "xp"):
                self._dump(rest)
            else:
                raise MonitorError(f"unknown command: '{command}' (try 'help')")
        except MonitorError as e:
            self.write(f"{e}\n")
        except Exception as e:  # a bus error: say it and stay in the monitor
            from mmiobus.client import BusError

            if not isinstance(e, BusError):
                raise
            self.write(f"error: {e}\n")
        return True

    # -- help, info ------------------------------------------------------------------------------

    def _help(self, rest: list[str]) -> None:
        if rest:
            topic = {"?": "help", "q": "quit"}.get(rest[0], rest[0])
            if topic not in HELP:
                raise MonitorError(f"unknown command: '{rest[0]}'")
            extra = f"\n{FMT_HELP}" if topic in ("x", "xp") else ""
            self.write(HELP[topic] + extra + "\n")
            return
        self.write("".join(f"{text}\n" for text in HELP.values()) + FMT_HELP + "\n")

    def _info(self, rest: list[str]) -> None:
        if not rest:
            self.write("".join(f"{text}\n" for text in INFO.values()))
            return
        what, flags = rest[0], rest[1:]
        what = {"irq": "irqs", "mtree": "mtree"}.get(what, what)
        if what not in INFO:
            raise MonitorError(f"unknown info subcommand: '{rest[0]}' (try 'info')")
        allowed = {"-f", "-D"} if what == "mtree" else set()
        for flag in flags:
            if flag not in allowed:
                raise MonitorError(f"info {what}: unknown flag '{flag}' ({INFO[what]})")
        if what == "mtree":
            self.write(self.bus.mtree(flat="-f" in flags, disabled="-D" in flags))
        elif what == "irqs":
            levels = self.bus.irqs()
            self.write("".join(f"{name}: {int(level)}\n" for name, level in levels.items()))
            if not levels:
                self.write("no interrupt line yet\n")
        elif what == "devices":
            self._devices()
        elif what == "regions":
            from .regions import describe, table

            topology = self.bus.topology(flat_views=False)
            self.write(table(describe(topology, self.bus.devices())))
        else:
            info = self.bus.info
            self.write(f"mmiobus {info.version} (protocol {info.protocol_version})\n")

    def _devices(self) -> None:
        devices = self.bus.devices()
        if not devices:
            self.write("no device is attached\n")
        for d in devices:
            where = "in the server" if d.in_process else d.peer
            self.write(
                f"{d.name}: {', '.join(d.regions)} ({where}), accesses={d.accesses} "
                f"timeouts={d.timeouts} dma={d.dma}\n"
            )

    # -- x, xp -----------------------------------------------------------------------------------

    def _dump(self, rest: list[str]) -> None:
        if rest and rest[0].startswith("/"):
            count, fmt, size = self.parse_format(rest[0])
            rest = rest[1:]
        else:
            count, fmt, size = 1, self.format, self.size
        if len(rest) != 1:
            raise MonitorError(f"give one address: x /fmt addr ({FMT_HELP})")
        try:
            addr = a.address(rest[0])
        except argparse.ArgumentTypeError as e:
            raise MonitorError(str(e)) from None
        self.write(self.memory_dump(count, fmt, size, addr))

    def parse_format(self, text: str) -> tuple[int, str, int]:
        """``/{count}{format}{size}`` as QEMU reads it: a missing format or size is the last
        one used (which this one then becomes)."""
        body = text[1:]
        digits = len(body) - len(body.lstrip("0123456789"))
        count = int(body[:digits]) if digits else 1
        fmt, size = None, None
        for ch in body[digits:]:
            if ch in FORMATS:
                fmt = ch
            elif ch in SIZES:
                size = SIZES[ch]
            else:
                raise MonitorError(f"invalid char in format: '{ch}'")
        fmt = fmt or self.format
        if fmt == "i":
            raise MonitorError("format 'i' (instructions) needs a CPU to disassemble for")
        self.format, self.size = fmt, size or self.size
        return count, self.format, self.size

    def memory_dump(self, count: int, fmt: str, size: int, addr: int) -> str:
        """QEMU's ``memory_dump``: lines of 16 bytes (8 for bytes), each value in ``fmt``."""
        from mmiobus.client import Read
        from mmiobus.wire import result_names

        total = size * count  # QEMU sizes the dump before 'c' narrows the unit to a byte
        line_size = 8 if size == 1 else 16
        digits = {"o": -(-size * 8 // 3), "u": -(-size * 80 // 33), "d": -(-size * 80 // 33)}
        width = digits.get(fmt, size * 2)
        if fmt == "c":
            size = 1
        lines = []
        at = addr
        while total > 0:
            n = min(total, line_size, (1 << 64) - at)
            lines.append((at, n))
            total -= n
            at += n
            if at >= 1 << 64:
                break
        order = self.bus.byteorder
        results = self.bus.batch([Read(at, n) for at, n in lines], check=False) if lines else []
        text = []
        for (at, n), got in zip(lines, results, strict=True):
            if got.result:
                text.append(f"{at:016x}: Cannot access memory ({result_names(got.result)})\n")
                break
            values = [int.from_bytes(got.data[i : i + size], order) for i in range(0, n, size)]
            text.append(f"{at:016x}:" + "".join(" " + _value(v, fmt, width, size) for v in values))
            text.append("\n")
        return "".join(text)


def _value(v: int, fmt: str, width: int, size: int) -> str:
    if fmt == "x":
        return f"0x{v:0{width}x}"
    if fmt == "o":
        return f"{'0' + format(v, 'o') if v else '0':>{width}}"
    if fmt == "u":
        return f"{v:>{width}}"
    if fmt == "d":
        return f"{v - (1 << 64) if v >= 1 << 63 else v:>{width}}"
    return _char(v)


def _char(c: int) -> str:
    """QEMU's ``monitor_printc``."""
    named = {0x27: "\\'", 0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r"}
    if c in named:
        return f"'{named[c]}'"
    return f"'{chr(c)}'" if 32 <= c <= 126 else f"'\\x{c:02x}'"


def run(monitor: Monitor, lines: Iterable[str]) -> None:
    """Run each line until one quits or the lines end."""
    for line in lines:
        if not monitor.execute(line):
            return


# -- the command -------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add ``monitor`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "monitor",
        help="an interactive monitor with QEMU's habits (info mtree, x, xp, info irqs)",
        description="Type QEMU monitor commands against the bus: info mtree [-f] [-D], "
        "x/xp /FMT ADDR, info irqs, info devices, info regions, info version, help, quit. At "
        "a terminal: history (kept between sessions) and Tab completion; from a pipe: one "
        "command per line.",
    )
    a.add_client_options(p)
    p.set_defaults(func=cmd_monitor)


def history_path() -> Path:
    """Where the monitor keeps its history: ``$XDG_STATE_HOME/mmiobus/monitor_history``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "mmiobus" / "monitor_history"


def completer() -> Any:
    """Tab completion of the commands, ``info`` subcommands and ``info mtree`` flags."""
    from prompt_toolkit.completion import NestedCompleter

    words: dict[str, Any] = {name: None for name in (*HELP, "q", "?")}
    words["info"] = {name: None for name in INFO}
    words["info"]["mtree"] = {"-f": None, "-D": None}
    words["help"] = {name: None for name in HELP}
    return NestedCompleter.from_nested_dict(words)


def _interactive(bus: Bus) -> Iterator[str]:
    """Lines typed at a terminal, with history and completion, until Ctrl-D."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        history: Any = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()
    session: PromptSession[str] = PromptSession(history=history, completer=completer())
    print(f"mmiobus {bus.info.version} monitor on {bus.address} - type 'help' for more information")
    while True:
        try:
            yield session.prompt(PROMPT)
        except KeyboardInterrupt:
            continue
        except EOFError:
            return


def cmd_monitor(args: argparse.Namespace) -> int:
    """``mmiobus monitor``: read commands until quit or the end of input."""
    with a.connect(args) as bus:
        monitor = Monitor(bus, out)
        run(monitor, _interactive(bus) if sys.stdin.isatty() else sys.stdin)
    return 0
