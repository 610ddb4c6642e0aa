"""The trace hub on its own (``mmiobus.server.trace``): what a group of accesses becomes for
each subscriber, and how little it costs when nobody can want it. Records here are plain
addresses; ``describe`` counts how often it is asked, since describing is the expensive part."""

from __future__ import annotations

from mmiobus.server.trace import Event, Gap, TraceFilter, TraceHub


class Describer:
    """Turns an address into an Event, counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, addr: int, seq: int) -> Event:
        self.calls += 1
        return Event(
            seq, 0, "memory", addr, 4, False, b"\0" * 4, 0, "ram", addr, "ram", "client", 0, 0
        )


def span(addrs: list[int]) -> tuple[int, int]:
    return min(addrs), max(addrs) + 4


def test_a_subscriber_that_wants_everything_takes_what_fits_and_counts_the_rest_lost():
    hub, describe = TraceHub(), Describer()
    sub = hub.subscribe(TraceFilter(), capacity=3)
    hub.offer([0x10, 0x14, 0x18, 0x1C, 0x20], describe, span)
    assert describe.calls == 3  # the two that cannot fit are not even described
    out = sub.take(10)
    assert [e.addr for e in out if type(e) is Event] == [0x10, 0x14, 0x18]
    assert out[-1] == Gap(2)
    assert sub.lost_total == 2


def test_a_gap_comes_before_the_events_queued_after_the_loss():
    hub, describe = TraceHub(), Describer()
    sub = hub.subscribe(TraceFilter(), capacity=2)
    hub.offer([0, 4, 8], describe, span)  # 8 is lost
    first = sub.take(1)
    hub.offer([12], describe, span)  # fits again, after the loss
    rest = sub.take(10)
    assert [type(x).__name__ for x in first + rest] == ["Event", "Event", "Gap", "Event"]
    assert [x.seq for x in first + rest if type(x) is Event] == [1, 2, 4]


def test_a_group_away_from_every_range_is_skipped_without_describing_it():
    hub, describe = TraceHub(), Describer()
    near = hub.subscribe(TraceFilter(ranges=((0x1000, 0x1010),)), capacity=100)
    hub.offer([0x5000, 0x5004], describe, span)
    assert describe.calls == 0 and not near.queue
    hub.offer([0x5000, 0x100C], describe, span)  # the group's span reaches the range
    assert [e.addr for e in near.take(10)] == [0x100C]


def test_a_group_is_skipped_unrecorded_only_when_no_subscriber_can_take_any_of_it():
    hub = TraceHub()
    hub.subscribe(TraceFilter(ranges=((0x1000, 0x2000),)), capacity=10)
    hub.subscribe(TraceFilter(ranges=((0x8000, 0x8001), (0x9000, 0x9100))), capacity=10)

    def skip(lo: int, hi: int) -> bool:
        return hub.skip(1, lambda: (lo, hi))

    assert skip(0x3000, 0x7000)
    assert skip(0x2000, 0x8000)  # ranges are half-open: touching is not overlapping
    assert not skip(0x1FFF, 0x3000)
    assert not skip(0x8500, 0x8600)  # between the second's ranges, inside their span: kept
    writes = hub.subscribe(TraceFilter(direction="write"), capacity=10)
    assert not skip(0x3000, 0x7000)  # a filter without ranges may want anything
    hub.unsubscribe(writes)
    assert skip(0x3000, 0x7000)
    assert hub.seq == 0  # nothing skipped for range misses alone was numbered


def test_a_group_nobody_has_room_for_is_counted_lost_without_recording_it():
    hub, describe = TraceHub(), Describer()
    sub = hub.subscribe(TraceFilter(), capacity=2)
    hub.subscribe(TraceFilter(ranges=((0x9000, 0x9100),)), capacity=10)
    assert not hub.skip(3, lambda: (0, 12))  # it has room: record
    hub.offer([0, 4, 8], describe, span)  # two fit, one lost
    assert hub.skip(5, lambda: (0, 20))  # full, and the other is not interested
    assert sub.lost_total == 1 + 5
    assert hub.seq == 3 + 5  # numbered as if offered
    assert sub.take(10)[-1] == Gap(6)
    hub.offer([0x40], describe, span)
    assert [e.seq for e in sub.take(10)] == [9]


def test_seq_numbers_every_offered_access_once_across_subscribers():
    hub, describe = TraceHub(), Describer()
    reads = hub.subscribe(TraceFilter(ranges=((0, 8),)), capacity=10)
    others = hub.subscribe(TraceFilter(ranges=((8, 16),)), capacity=10)
    hub.offer([0, 4, 8, 12], describe, span)
    assert describe.calls == 4  # each access described once, shared by both
    assert [e.seq for e in reads.take(10)] == [1, 2]
    assert [e.seq for e in others.take(10)] == [3, 4]
