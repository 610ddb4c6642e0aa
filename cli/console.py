"""The process's side of a command: what it prints (text, JSON, progress bars), the files and
standard input it reads, the files it writes (replaced only once they are worth keeping), and
running a coroutine until it ends or Ctrl-C (SIGINT) or SIGTERM stops it."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import CommandError

# Transfers shorter than this finish before a progress bar would tell anything.
PROGRESS_MIN_BYTES = 1 << 20


def out(text: str) -> None:
    """Print ``text`` as it is (no newline added) and flush, so pipes see it at once."""
    sys.stdout.write(text)
    sys.stdout.flush()


def out_bytes(data: bytes) -> None:
    """Write raw bytes to standard output."""
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def out_json(value: Any) -> None:
    """Print ``value`` as indented JSON."""
    out(json.dumps(value, indent=2) + "\n")


@contextmanager
def progress(total: int, what: str) -> Iterator[Callable[[int], object]]:
    """A progress bar on standard error for a transfer of ``total`` bytes: yields the function
    to call with each step's byte count. Shown only when standard error is a terminal (never
    in a pipe or a log) and the transfer is at least ``PROGRESS_MIN_BYTES``."""
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(
        total=total,
        desc=what,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        yield bar.update


class OutputFile:
    """A file written beside its final path and put in its place by ``keep()``: until then, a
    file already at that path (an earlier recording, say) is untouched, and ``discard()``
    removes what was written. A ``CommandError`` if the folder is not writable."""

    def __init__(self, path: str, binary: bool = False) -> None:
        self.path = Path(path)
        try:
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        except OSError as e:
            raise CommandError(f"cannot write {path}: {e.strerror or e}") from None
        self.temp = Path(temp)
        # mkstemp makes the file private; give it the mode a new file would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(fd, 0o666 & ~umask)
        self.file: IO[Any] = os.fdopen(fd, "wb" if binary else "w")
        self.kept = False

    def keep(self) -> None:
        """Put the file at its path now (later writes still reach it)."""
        if not self.kept:
            if not self.file.closed:
                self.file.flush()
            os.replace(self.temp, self.path)
            self.kept = True

    def close(self, keep: bool) -> None:
        """Close; with ``keep`` the file takes its path, else (unless already kept) it goes."""
        self.file.close()
        if keep:
            self.keep()
        elif not self.kept:
            self.temp.unlink(missing_ok=True)


def read_text(path: str) -> str:
    """The text of ``path`` (``-``: standard input); a ``CommandError`` naming it if unreadable."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CommandError(f"cannot read {path}: it is not text (UTF-8)") from None


def run_until_interrupted(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on a fresh event loop (uvloop where available). SIGINT and SIGTERM cancel
    it, and a cancelled run returns normally: stopping a command that runs until stopped is
    not an error. (Signals are caught only in the main thread, where Python delivers them.)"""
    import asyncio
    import signal

    async def main() -> None:
        task = asyncio.ensure_future(coro)
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        import uvloop
    except ImportError:  # pragma: no cover - e.g. Windows
        asyncio.run(main())
    else:
        uvloop.run(main())
