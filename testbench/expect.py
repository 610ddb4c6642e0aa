"""Watching a bench's expectations: text on a console (a process's output or a file a device
writes), a value at an address (read through the bus), a process's end (a CPU's guest exit).
Each watch says whether it is met and, when it is not, what was seen instead."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .schema import ConsoleExpectation, ExitExpectation, MemoryExpectation

# The last line `mmiobus cpu run` prints: mmiobus cpu cpu0: guest_exit exit_code=0 at pc=0x...
SUMMARY = re.compile(r"^mmiobus cpu \S+: (?P<reason>\w+)(?: exit_code=(?P<code>-?\d+))? at pc=")
SEEN = 300  # characters of a console kept to show what it printed instead


class Watch:
    """One expectation: ``met`` once it holds (it stays met), ``seen()`` what there was."""

    met = False

    def describe(self) -> str:
        raise NotImplementedError

    def seen(self) -> str:
        raise NotImplementedError


class ConsoleWatch(Watch):
    """Text that must appear in a process's output or a file."""

    def __init__(self, e: ConsoleExpectation, folder: Path) -> None:
        self.expectation = e
        self.path = (folder / e.file) if e.file is not None else None
        self.text = ""
        self._offset = 0

    def describe(self) -> str:
        where = self.expectation.process or self.expectation.file
        return f"{self.expectation.text!r} on {where}'s console"

    def feed(self, text: str) -> None:
        """More of the console."""
        self.text = (self.text + text)[-(len(self.expectation.text) + 64 * 1024) :]
        if self.expectation.text in self.text:
            self.met = True

    def poll_file(self) -> None:
        """Read what the file gained since the last call."""
        if self.path is None or self.met:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        self._offset += len(data)
        self.feed(data.decode(errors="replace"))

    def seen(self) -> str:
        if not self.text.strip():
            return "it printed nothing"
        tail = self.text[-SEEN:]
        return f"it printed {'...' if len(self.text) > SEEN else ''}{tail!r}"


class MemoryWatch(Watch):
    """A value that must show up at an address."""

    def __init__(self, e: MemoryExpectation) -> None:
        self.expectation = e
        self.last: str = "nothing read yet"

    def want(self, order: str) -> bytes:
        e = self.expectation
        if e.data is not None:
            return bytes.fromhex(e.data)
        assert e.value is not None
        return e.value.to_bytes(e.size, order)  # type: ignore[arg-type]

    def describe(self) -> str:
        e = self.expectation
        what = e.data if e.data is not None else f"{e.value:#x} ({e.size} bytes)"
        space = f" in {e.address_space}" if e.address_space else ""
        return f"{what} at {e.addr:#x}{space}"

    async def poll(self, bus: Any) -> None:
        """Read the address through the bus (an ``AsyncBus``)."""
        from mmiobus.client import BusError

        e = self.expectation
        want = self.want(bus.byteorder)
        try:
            got = await bus.read(e.addr, len(want), address_space=e.address_space)
        except BusError as err:
            self.last = f"reading it failed: {err}"
            return
        self.last = f"it held {got.hex(' ')}" if e.data is not None else (
            f"it held {int.from_bytes(got, bus.byteorder):#x}")  # fmt: skip
        if got == want:
            self.met = True

    def seen(self) -> str:
        return self.last


class ExitWatch(Watch):
    """A process that must end: a CPU's guest exit code (its summary line), or an exit status."""

    def __init__(self, e: ExitExpectation, is_cpu: bool) -> None:
        self.expectation = e
        self.is_cpu = is_cpu
        self.summary: dict[str, str] | None = None
        self.status: int | None = None
        self.failed = False  # ended, but not as expected: the bench cannot succeed

    def describe(self) -> str:
        e = self.expectation
        if self.is_cpu:
            reason = e.reason or "guest_exit"
            code = f" exit_code={e.code}" if reason == "guest_exit" else ""
            return f"{e.process} ending with {reason}{code}"
        return f"{e.process} exiting with status {e.code}"

    def feed(self, line: str) -> None:
        """A line of the process's standard output."""
        m = SUMMARY.match(line)
        if m:
            self.summary = m.groupdict()

    def ended(self, status: int) -> None:
        """The process exited with ``status``."""
        self.status = status
        e = self.expectation
        if self.is_cpu:
            s = self.summary or {}
            reason = e.reason or "guest_exit"
            ok = s.get("reason") == reason and (
                reason != "guest_exit" or s.get("code") == str(e.code)
            )
        else:
            ok = status == e.code
        self.met, self.failed = ok, not ok

    def seen(self) -> str:
        if self.status is None:
            return "it is still running"
        if self.is_cpu and self.summary is not None:
            s = self.summary
            code = f" exit_code={s['code']}" if s.get("code") is not None else ""
            return f"it ended with {s['reason']}{code} (exit status {self.status})"
        return f"it exited with status {self.status}"
