"""One process of a running bench: started in the bench's folder (in a network namespace when
it names one), its output read as it comes — shown line by line, handed raw to whoever watches
it — its last lines kept to explain a failure, and stopped with a signal, then killed if it
does not go."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from .commands import Command
from .output import Output

LAST_LINES = 12
KEEP_OUTPUT = 1 << 20  # characters of standard output kept (``Proc.stdout``)
PARTIAL_AFTER = 0.5  # seconds: show a line that has not ended yet (a prompt) after this long


def mmiobus_argv() -> list[str]:
    """How to run ``mmiobus`` here: this Python, so that a bench runs what runs it."""
    return [sys.executable, "-m", "mmiobus"]


class Proc:
    """A started ``Command``: see the module docstring. ``on_output(chunk)`` listeners get
    standard output as it arrives; ``on_line(line)`` listeners get both streams' lines."""

    def __init__(self, command: Command, output: Output) -> None:
        self.command = command
        self.name = command.name
        self.output = output
        self.process: asyncio.subprocess.Process | None = None
        self.last: collections.deque[str] = collections.deque(maxlen=LAST_LINES)
        self.stdout = ""  # its standard output so far (the last KEEP_OUTPUT characters)
        self.on_output: list[Callable[[str], None]] = []
        self.on_line: list[Callable[[str], None]] = []
        self.ready = asyncio.Event()
        self.stopping = False  # asked to stop: its end is no failure
        self.judged = False  # its end was judged
        self._pumps: list[asyncio.Task[None]] = []

    async def start(self, folder: Path, env: dict[str, str]) -> None:
        """Start it with ``env`` added to this process's environment."""
        c = self.command
        if c.kind is None or c.kind.mmiobus:
            argv = [*mmiobus_argv(), *c.argv]
        else:  # a program; `python` is this Python (a venv's has mmiobus)
            argv = [
                sys.executable if c.argv[0] in ("python", "python3") else c.argv[0],
                *c.argv[1:],
            ]
        if c.host is not None:
            argv = ["ip", "netns", "exec", c.host, *argv]
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **env, **c.env}
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=folder / (c.workdir or "."),
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group: Ctrl-C at the terminal reaches `up`, which stops the
            # processes in order, rather than all of them at once. Not its own session: where
            # the kernel groups tasks by session for fair shares (autogroup), a session per
            # process made forwarded reads a few percent slower than the same processes in
            # one session (bench/benches.py), so the bench stays in `up`'s.
            preexec_fn=os.setpgrp,  # uvloop has no process_group=0
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._pumps = [
            asyncio.create_task(self._pump(self.process.stdout, True)),
            asyncio.create_task(self._pump(self.process.stderr, False)),
        ]

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def _pump(self, stream: asyncio.StreamReader, stdout: bool) -> None:
        pending = ""
        while True:
            try:
                data = await asyncio.wait_for(stream.read(65536), PARTIAL_AFTER)
            except TimeoutError:
                if pending:  # a prompt, or a guest that prints without newlines
                    self._line(pending)
                    pending = ""
                continue
            if not data:
                break
            text = data.decode(errors="replace")
            if stdout:
                self.stdout = (self.stdout + text)[-KEEP_OUTPUT:]
                for listener in self.on_output:
                    listener(text)
            *lines, pending = (pending + text).split("\n")
            for line in lines:
                self._line(line.rstrip("\r"))
        if pending:
            self._line(pending)

    def _line(self, line: str) -> None:
        self.last.append(line)
        self.output.line(self.name, line)
        for listener in self.on_line:
            listener(line)

    async def wait(self) -> int:
        """Its exit status, once it exited and its output was read."""
        assert self.process is not None
        status = await self.process.wait()
        if self._pumps:
            await asyncio.gather(*self._pumps, return_exceptions=True)
        return status

    async def stop(self, grace: float, sig: int = signal.SIGINT) -> int | None:
        """Signal it, wait up to ``grace`` seconds, then kill it; its exit status."""
        self.stopping = True
        if self.process is None:
            return None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                return await asyncio.wait_for(self.wait(), grace)
            except TimeoutError:
                self.output.say(f"{self.name} did not stop within {grace:g}s: killed")
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
        return await self.wait()

    def tail(self, indent: str = "  ") -> list[str]:
        """Its last lines, to show why it failed."""
        lines = [line for line in self.last if line.strip()]
        if not lines:
            return [f"{indent}({self.name} printed nothing)"]
        return [f"{indent}{self.name} │ {line}" for line in lines]
