"""The process's side of a command: what it prints, the files and standard input it reads, and
running a coroutine until it ends or Ctrl-C (SIGINT) or SIGTERM stops it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from .errors import CommandError


def out(text: str) -> None:
    """Print ``text`` as it is (no newline added) and flush, so pipes see it at once."""
    sys.stdout.write(text)
    sys.stdout.flush()


def out_bytes(data: bytes) -> None:
    """Write raw bytes to standard output."""
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


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
