"""Warnings about what peers send: one line each, naming the peer, and never a flood.

A peer that sends malformed messages (bytes that do not parse, a device that breaks the
protocol) is the peer's problem, not the server's: it gets a status that says what was wrong,
and the server log gets one warning line naming the peer — no traceback, nothing called an
internal error. A peer that keeps doing it could fill the log, so each peer may cause at most
``BURST`` such lines per ``WINDOW`` seconds; the next line after a quiet spell says how many
were left out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import structlog

log = structlog.get_logger("mmiobus.peers")

BURST = 5  # lines per peer per window
WINDOW = 10.0  # seconds
PEERS = 1024  # peers remembered (the least recently warned about are forgotten first)


class PeerWarnings:
    """The rate limiter behind ``warn`` (one per process; tests make their own)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        # peer -> [window start, lines in this window, lines left out]
        self._peers: OrderedDict[str, list[float]] = OrderedDict()

    def warn(self, event: str, peer: str, key: str = "", **fields: Any) -> bool:
        """Log ``event`` about ``peer`` as a warning unless it used up its lines for now;
        returns whether it was logged. ``key`` names who within the peer (a device: several
        may share one connection) when that is who the allowance is for."""
        now = self._clock()
        who = f"{peer} {key}" if key else peer
        state = self._peers.get(who)
        if state is None or now - state[0] >= WINDOW:
            left_out = int(state[2]) if state is not None else 0
            state = [now, 0.0, 0.0]
            if left_out:
                fields["left_out"] = left_out  # lines not logged in the last window
        self._peers[who] = state
        self._peers.move_to_end(who)
        while len(self._peers) > PEERS:
            self._peers.popitem(last=False)
        if state[1] >= BURST:
            state[2] += 1
            return False
        state[1] += 1
        log.warning(event, peer=peer, **fields)
        return True


_WARNINGS = PeerWarnings()


def warn(event: str, peer: str, key: str = "", **fields: Any) -> bool:
    """One warning line about something ``peer`` sent (rate-limited per peer, or per ``key``
    within it; see the module docstring). Returns whether it was logged."""
    return _WARNINGS.warn(event, peer, key, **fields)
