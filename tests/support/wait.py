"""Polling with a deadline: the one way the tests wait for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Generous: a deadline only turns a hang into a failure, it never decides a test.
TIMEOUT = 30.0


def wait_for(
    what: Callable[[], Any],
    timeout: float = TIMEOUT,
    interval: float = 0.01,
    message: str | Callable[[], str] = "",
) -> Any:
    """Poll ``what()`` every ``interval`` seconds until it returns something truthy, and return
    that value. After ``timeout`` seconds, raise ``AssertionError`` with ``message`` (a string,
    or a function called then, to describe the state at the deadline). Exceptions from
    ``what()`` propagate at once, so it can assert that waiting still makes sense."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(text or f"condition not met within {timeout}s: {what}")
        time.sleep(interval)
