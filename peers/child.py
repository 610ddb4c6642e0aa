"""Child processes whose lifetime is the device's: a peer (QEMU, a simulator) dies with the
process that started it (even a SIGKILLed one, on Linux), is stopped when the device stops,
and keeps its last lines of standard error for the log when it dies first."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import socket
import subprocess
from collections.abc import Sequence
from typing import Any

import structlog

log = structlog.get_logger("mmiobus.peers")

TAIL_LINES = 12


def _dying_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that it gets SIGKILL when this process dies (Linux's parent-death
    signal, set by util-linux's setpriv, which then execs ``argv``). Not with a preexec_fn:
    Python code between fork and exec in a process with gRPC's threads can crash the child."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


class PeerStartError(Exception):
    """The peer could not start; carries its own words (or what went wrong)."""


def listening_socket(path: str) -> socket.socket:
    """A non-blocking unix socket listening at ``path``, for a peer to connect to."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    s.setblocking(False)
    return s


class ChildProcess:
    """A running peer process. ``tail`` holds its last lines of standard error (also logged
    at debug level as they come, under ``what``)."""

    def __init__(self, proc: asyncio.subprocess.Process, what: str) -> None:
        self.proc = proc
        self.what = what
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._drain = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        what: str,
        *,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        stdout: Any = None,
        cwd: str | None = None,
    ) -> ChildProcess:
        """Start ``argv`` with standard input closed and standard error kept (``stdout``:
        inherited unless given). ``FileNotFoundError`` if the program is not installed."""
        proc = await asyncio.create_subprocess_exec(
            *_dying_with_parent(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=tuple(pass_fds),
            cwd=cwd,
        )
        return cls(proc, what)

    async def _read_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        while raw := await stream.readline():
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.tail.append(line)
                log.debug("peer says", peer=self.what, line=line)

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def wait(self) -> int:
        """Its exit status, once it has exited and its standard error is read."""
        status = await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._drain), 2.0)
        return status

    def last_words(self, prefix: str = "") -> str:
        """Its last line of standard error that starts with ``prefix`` (a program's errors
        start with its name; hints may follow them), else its last line, or its exit status
        when it said nothing."""
        if self.tail:
            marked = [line for line in self.tail if prefix and line.startswith(prefix)]
            return (marked or list(self.tail))[-1]
        status = self.proc.returncode
        if status is None:
            return f"{self.what} is still running"
        if status < 0:
            return f"{self.what} was killed by signal {-status}"
        return f"{self.what} exited with status {status}"

    async def accept(self, listeners: list[socket.socket], timeout: float) -> list[socket.socket]:
        """The connections it makes to ``listeners`` (listening, non-blocking), one each;
        ``PeerStartError`` with its last words if it exits first or says nothing for
        ``timeout`` seconds (then it is stopped)."""
        loop = asyncio.get_running_loop()
        accepts = asyncio.gather(*(loop.sock_accept(s) for s in listeners))
        exited = asyncio.ensure_future(self.wait())
        waiting: set[asyncio.Future[Any]] = {accepts, exited}
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if accepts in done:
            return [conn for conn, _addr in accepts.result()]
        accepts.cancel()
        with contextlib.suppress(BaseException):
            await accepts
        if exited in done:
            raise PeerStartError(self.last_words(self.what + ":"))
        await self.stop()
        raise PeerStartError(f"{self.what} did not connect within {timeout:g}s")

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns once it has exited."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        self._drain.cancel()
