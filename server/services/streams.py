"""Small helpers for long-lived streams that must end promptly when the server stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def first_of(*waits: Awaitable[Any]) -> None:
    """Wait until any of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def until(items: AsyncIterable[T], stop: asyncio.Event) -> AsyncIterator[T]:
    """The items of ``items`` until it ends or ``stop`` is set (whichever comes first; an item
    that arrives after ``stop`` is not yielded)."""
    it = items.__aiter__()
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            nxt = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({nxt, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if nxt not in done:
                nxt.cancel()
                return
            try:
                yield nxt.result()
            except StopAsyncIteration:
                return
    finally:
        stopper.cancel()
