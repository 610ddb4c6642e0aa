"""How a CPU waits for the answers of the bus on another thread (``mmiobus.cpu.remote_bus``):
it polls for up to a window before it sleeps, and the window adapts to how long answers take."""

from __future__ import annotations

import threading

import pytest
from mmiobus.cpu.remote_bus import (
    POLL_MAX_NS,
    POLL_START_NS,
    Access,
    BusLost,
    PipelinedBus,
    poll_max,
)

LATE = 0.005  # seconds: far longer than any window these tests poll for


class Answering(PipelinedBus):
    """A bus whose other thread answers every read with its address, after ``delay`` seconds;
    ``polls`` counts the waits that polled."""

    def __init__(self, poll_max_ns: int, delay: float) -> None:
        super().__init__(poll_max_ns)
        self.delay = delay
        self.polls = 0

    def _issue(self, accesses: list[Access]) -> None:
        for rid, addr, size, data in accesses:
            if data is None:
                answer = (rid, addr.to_bytes(size, "little"), 0)
                timer = threading.Timer(self.delay, self.replies.put, (answer,))
                timer.daemon = True  # a test that ends first leaves no thread behind
                timer.start()

    def _poll(self) -> object:
        self.polls += 1
        return super()._poll()


def test_a_wait_that_outlasts_the_window_grows_it_by_doubling():
    bus = Answering(poll_max_ns=10**9, delay=LATE)
    windows = []
    for addr in (0x10, 0x20, 0x30):
        assert bus.read(addr, 4) == addr
        windows.append(bus.poll_ns)
    assert windows == [POLL_START_NS, 2 * POLL_START_NS, 4 * POLL_START_NS]


def test_the_window_settles_where_it_covers_how_long_answers_take():
    bus = Answering(poll_max_ns=10**9, delay=LATE)
    for addr in range(16):
        assert bus.read(addr, 4) == addr
    late_ns = LATE * 1e9
    assert late_ns <= bus.poll_ns < 4 * late_ns  # doubled until answers came within it
    assert bus.polls == 16


def test_a_wait_longer_than_the_maximum_stops_polling_until_answers_come_faster():
    bus = Answering(poll_max_ns=POLL_START_NS, delay=LATE)  # answers take far longer than 4 us
    bus.poll_ns = POLL_START_NS
    assert bus.read(0x50, 4) == 0x50
    assert bus.poll_ns == 0


def test_an_answer_within_the_window_is_taken_while_polling_and_keeps_the_window():
    bus = Answering(poll_max_ns=10 * 10**9, delay=0.001)
    bus.poll_ns = 10 * 10**9  # ten seconds: the answer comes within it
    assert bus.read(0x60, 2) == 0x60
    assert bus.poll_ns == 10 * 10**9
    assert bus.polls == 1


def test_without_polling_a_wait_sleeps_at_once():
    bus = Answering(poll_max_ns=0, delay=LATE)
    for addr in (0x70, 0x80):
        assert bus.read(addr, 4) == addr
    assert bus.polls == 0 and bus.poll_ns == 0


def test_a_bus_that_goes_away_ends_a_wait_that_polls():
    bus = Answering(poll_max_ns=10 * 10**9, delay=3600)
    bus.poll_ns = 10 * 10**9
    threading.Timer(LATE, bus.lost, ("the server is stopping",)).start()
    with pytest.raises(BusLost, match="the server is stopping"):
        bus.read(0x90, 4)


def test_a_cpu_polls_by_default_only_while_its_threads_share_a_core():
    assert poll_max(None, pinned=True) == POLL_MAX_NS
    assert poll_max(None, pinned=False) == 0  # --no-pin: polling would keep a core from them
    assert poll_max(250_000, pinned=False) == 250_000  # --poll-max-us says otherwise
    assert poll_max(0, pinned=True) == 0
