"""An event loop in a daemon thread: how the blocking `Bus` runs the asyncio client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread. ``run`` waits for a coroutine's result,
    ``submit`` does not, and ``call_soon`` schedules a plain callback on the loop."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="mmiobus-client", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` on the loop and wait for its result (re-raising what it raises)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking Bus cannot be used from its own callbacks")
        finished = threading.Event()
        fut = asyncio.run_coroutine_threadsafe(_signalling(coro, finished), self.loop)
        try:
            return fut.result()
        except BaseException:
            # Interrupted (Ctrl-C) while the coroutine still runs: cancel it and let it unwind
            # before the caller goes on (closing the iterator it was advancing, say).
            fut.cancel()
            finished.wait(5)
            raise

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop; its future completes when it does."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` on the loop's thread, soon (from any thread)."""
        self.loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        """Stop the loop, wait for its thread (up to 5 s) and close it."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


async def _signalling(coro: Awaitable[T], finished: threading.Event) -> T:
    try:
        return await coro
    finally:
        finished.set()
