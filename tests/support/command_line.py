"""The installed ``mmiobus`` command, run to the end or in the background."""

from __future__ import annotations

import subprocess
import threading
from queue import Empty, Queue

from support.servers import MMIOBUS, process_env


def command_env() -> dict[str, str]:
    """The environment of a command: ``process_env()`` without the caller's ``MMIOBUS_SERVER``
    (each test names the server it means)."""
    env = process_env()
    env.pop("MMIOBUS_SERVER", None)
    return env


def mmiobus(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``mmiobus ARGS`` to the end (text output)."""
    return subprocess.run(
        [MMIOBUS, *args], capture_output=True, text=True, timeout=timeout, env=command_env()
    )


class Background:
    """``mmiobus ARGS`` running in the background, its output lines read as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [MMIOBUS, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=command_env(),
        )
        self.lines: Queue[str] = Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float = 20.0) -> str:
        """The next line it printed (fails after ``timeout`` seconds without one)."""
        try:
            return self.lines.get(timeout=timeout)
        except Empty:
            raise AssertionError(f"`mmiobus` printed nothing within {timeout}s") from None

    def close(self) -> str:
        """Stop it; its standard error."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return err
