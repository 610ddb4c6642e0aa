"""Access tracing: every access the bus serves, offered to subscribers without slowing it.

Publishing costs nothing when nobody subscribes (callers check ``hub.active`` first). With
subscribers, an access becomes one ``Event`` tuple; each subscriber's filter — small predicates
composed into one (``compile_filter``) — decides before anything is queued; each subscriber has
a bounded queue, and when it is full the event is counted as lost instead of waiting. The stream
that drains a queue reports every gap in-band (``Gap``), so a slow subscriber loses events but
never slows the bus.
"""

from __future__ import annotations

import collections
import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from mmiobus.wire import result_names  # noqa: F401 - re-exported for older importers

if TYPE_CHECKING:
    from mmiobus.memory.addrspace import AddressSpace
    from mmiobus.memory.flatview import FlatView

KINDS = ("ram", "rom", "romd", "mmio", "unassigned")


class Event(NamedTuple):
    """One access, as it completed."""

    seq: int
    timestamp_ns: int  # monotonic
    address_space: str
    addr: int
    size: int
    is_write: bool
    data: bytes  # bytes written, or read (the whole access; subscribers truncate)
    result: int  # MemTxResult bits
    region: str  # id of the region the first byte resolved to ("" for a hole)
    offset: int  # offset of the first byte inside that region
    kind: str  # ram, rom, romd, mmio or unassigned
    initiator: str  # "client" or the name of the device whose DMA this is
    requester_id: int
    latency_ns: int  # for accesses that waited for a device: how long; else 0


class AccessRecord(NamedTuple):
    """A completed access as the bus records it for the tracer, cheaply: the region that
    served it is looked up (in ``view``) only if some subscriber may want it."""

    space: AddressSpace
    view: FlatView  # the flat view the access was issued against
    addr: int
    size: int
    is_write: bool
    data: bytes
    result: int
    initiator: str  # "client", a device (its DMA) or a CPU
    requester_id: int
    latency_ns: int  # 0 unless the access waited for a device
    timestamp_ns: int


class Gap(NamedTuple):
    """``lost`` events that matched this subscriber were dropped because it fell behind."""

    lost: int


Predicate = Callable[[Event], bool]


@dataclass(frozen=True)
class TraceFilter:
    """What a subscriber wants; every non-empty criterion must hold. Address ranges are
    half-open ``(start, end)``; region names and initiators are globs; ``results`` is "any",
    "ok" or "fault"; ``sample_rate`` keeps that fraction of matching events."""

    ranges: tuple[tuple[int, int], ...] = ()
    address_spaces: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    direction: str = "any"  # "any", "read" or "write"
    kinds: tuple[str, ...] = ()
    initiators: tuple[str, ...] = ()
    results: str = "any"  # "any", "ok" or "fault"
    sample_rate: float = 1.0

    def __post_init__(self) -> None:
        for start, end in self.ranges:
            if not 0 <= start < end <= 1 << 64:
                raise ValueError(f"address range {start:#x}..{end:#x} is empty or out of range")
        if self.direction not in ("any", "read", "write"):
            raise ValueError(f"direction {self.direction!r} is not any, read or write")
        if self.results not in ("any", "ok", "fault"):
            raise ValueError(f"results {self.results!r} is not any, ok or fault")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"kind {unknown[0]!r} is not one of {', '.join(KINDS)}")
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate {self.sample_rate} is not in (0, 1]")


# -- predicates: one small function per criterion -----------------------------------------------


def in_ranges(ranges: Iterable[tuple[int, int]]) -> Predicate:
    spans = tuple(ranges)
    return lambda e: any(e.addr < end and s < e.addr + max(e.size, 1) for s, end in spans)


def in_address_spaces(names: Iterable[str]) -> Predicate:
    wanted = frozenset(names)
    return lambda e: e.address_space in wanted


def in_regions(patterns: Iterable[str]) -> Predicate:
    pats = tuple(patterns)
    return lambda e: any(fnmatch.fnmatchcase(e.region, p) for p in pats)


def is_direction(write: bool) -> Predicate:
    return lambda e: e.is_write == write


def of_kinds(kinds: Iterable[str]) -> Predicate:
    wanted = frozenset(kinds)
    return lambda e: e.kind in wanted


def from_initiators(patterns: Iterable[str]) -> Predicate:
    pats = tuple(patterns)

    def match(e: Event) -> bool:
        names = (e.initiator, f"{e.initiator}:{e.requester_id}")
        return any(fnmatch.fnmatchcase(n, p) for p in pats for n in names)

    return match


def with_results(fault: bool) -> Predicate:
    return (lambda e: e.result != 0) if fault else (lambda e: e.result == 0)


def sampled(rate: float) -> Predicate:
    """Keep ``rate`` of the events that reach it, evenly spaced (deterministic)."""
    state = [0.0]

    def keep(_e: Event) -> bool:
        state[0] += rate
        if state[0] >= 1.0:
            state[0] -= 1.0
            return True
        return False

    return keep


def compile_filter(f: TraceFilter) -> Predicate | None:
    """One predicate for all of ``f``'s criteria (sampling last), or None to accept all."""
    preds: list[Predicate] = []
    if f.address_spaces:
        preds.append(in_address_spaces(f.address_spaces))
    if f.ranges:
        preds.append(in_ranges(f.ranges))
    if f.direction != "any":
        preds.append(is_direction(f.direction == "write"))
    if f.kinds:
        preds.append(of_kinds(f.kinds))
    if f.regions:
        preds.append(in_regions(f.regions))
    if f.initiators:
        preds.append(from_initiators(f.initiators))
    if f.results != "any":
        preds.append(with_results(f.results == "fault"))
    if f.sample_rate < 1:
        preds.append(sampled(f.sample_rate))
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    return lambda e: all(p(e) for p in preds)


@dataclass(eq=False)
class Subscriber:
    """One subscriber's filter and bounded queue; its stream drains ``take()``.

    ``span``: when the filter names address ranges, their overall (start, end), so that a batch
    of accesses far from them is skipped without looking at each access."""

    accept: Predicate | None
    capacity: int
    span: tuple[int, int] | None = None
    queue: collections.deque[Event | Gap] = field(default_factory=collections.deque)
    lost: int = 0  # lost since the last queued item
    lost_total: int = 0
    wake: Callable[[], None] | None = None

    def _put(self, event: Event) -> None:
        q = self.queue
        if len(q) >= self.capacity:
            self.lost += 1
            self.lost_total += 1
            return
        was_empty = not q
        if self.lost:  # the gap sits where the events were lost: before this one
            q.append(Gap(self.lost))
            self.lost = 0
        q.append(event)
        if was_empty and self.wake is not None:
            self.wake()

    def take(self, limit: int) -> list[Event | Gap]:
        """Up to ``limit`` queued items in order; a gap that follows the last queued event
        (events lost since) comes out once the queue has drained up to it."""
        q = self.queue
        out: list[Event | Gap] = [q.popleft() for _ in range(min(limit, len(q)))]
        if not q and self.lost:
            out.append(Gap(self.lost))
            self.lost = 0
        return out


Describe = Callable[[Any, int], Event]  # (a record, its seq) -> Event
Span = Callable[[Sequence[Any]], tuple[int, int]]  # records -> (lowest addr, end of highest)


def access_span(accesses: Sequence[AccessRecord]) -> tuple[int, int]:
    """The addresses a group of ``AccessRecord`` records touches, as one half-open span."""
    return min(a.addr for a in accesses), max(a.addr + max(a.size, 1) for a in accesses)


class TraceHub:
    """The bus's subscribers. ``active`` is False when there are none: check it before
    recording anything.

    Accesses are offered in groups (``offer``): the caller records each one cheaply (an
    ``AccessRecord``, or whatever is cheapest for it to keep), and ``describe`` turns a record into an
    ``Event`` — looking up its region — only when some subscriber may want it. A subscriber
    that wants everything takes what fits in its queue and counts the rest as lost at once; one
    whose address ranges the group does not touch skips it. When no subscriber can take any of a
    group (``skip``), the caller need not even record it.
    """

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.active = False
        self.seq = 0

    def subscribe(self, f: TraceFilter, capacity: int) -> Subscriber:
        span = (min(s for s, _ in f.ranges), max(e for _, e in f.ranges)) if f.ranges else None
        sub = Subscriber(compile_filter(f), max(1, capacity), span)
        self.subscribers.append(sub)
        self.active = True
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)
        self.active = bool(self.subscribers)

    def skip(self, n: int, span_of: Callable[[], tuple[int, int]]) -> bool:
        """Before a group of ``n`` accesses runs: whether no subscriber can take any of them,
        each either naming address ranges away from all of them (``span_of()``: the addresses
        they touch) or wanting everything with no room left. Then the group is accounted for
        here — lost to the subscribers that wanted it — and need not be recorded at all."""
        span: tuple[int, int] | None = None
        full = []
        for sub in self.subscribers:
            if sub.accept is None:
                if len(sub.queue) < sub.capacity:
                    return False
                full.append(sub)
            elif sub.span is not None:
                if span is None:
                    span = span_of()
                if not (span[1] <= sub.span[0] or sub.span[1] <= span[0]):
                    return False
            else:
                return False
        if full:  # numbered, as they would have been if offered
            self.seq += n
            for sub in full:
                sub.lost += n
                sub.lost_total += n
        return True

    def offer(
        self, accesses: Sequence[Any], describe: Describe, span_of: Span = access_span
    ) -> None:
        """Offer completed accesses (in order) to every subscriber; ``span_of`` gives the
        addresses a group of records touches."""
        n = len(accesses)
        if not n:
            return
        base = self.seq
        self.seq += n
        events: list[Event | None] = [None] * n
        span: tuple[int, int] | None = None
        for sub in self.subscribers:
            accept = sub.accept
            if accept is None:  # wants every event: as many as fit, the rest are lost
                room = max(0, min(n, sub.capacity - len(sub.queue)))
                for i in range(room):
                    event = events[i]
                    if event is None:
                        event = events[i] = describe(accesses[i], base + i + 1)
                    sub._put(event)
                if room < n:
                    sub.lost += n - room
                    sub.lost_total += n - room
                continue
            if sub.span is not None:
                if span is None:
                    span = span_of(accesses)
                if span[1] <= sub.span[0] or sub.span[1] <= span[0]:
                    continue
            for i in range(n):
                event = events[i]
                if event is None:
                    event = events[i] = describe(accesses[i], base + i + 1)
                if accept(event):
                    sub._put(event)
