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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from mmiobus.wire import result_names  # noqa: F401 - re-exported for older importers

from .names import check_globs, compile_globs

if TYPE_CHECKING:
    from mmiobus.memory.addrspace import AddressSpace
    from mmiobus.memory.flatview import FlatView

KINDS = ("ram", "rom", "romd", "mmio", "unassigned")
MAX_RANGES = 256  # address ranges in one filter: each event may be tested against all of them


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
        if len(self.ranges) > MAX_RANGES:
            raise ValueError(
                f"{len(self.ranges)} address ranges, more than the limit of {MAX_RANGES}"
            )
        check_globs(self.regions, "regions")
        check_globs(self.initiators, "initiators")


# -- predicates: one small function per criterion -----------------------------------------------


def in_ranges(ranges: Iterable[tuple[int, int]]) -> Predicate:
    spans = tuple(ranges)
    return lambda e: any(e.addr < end and s < e.addr + max(e.size, 1) for s, end in spans)


def in_address_spaces(names: Iterable[str]) -> Predicate:
    wanted = frozenset(names)
    return lambda e: e.address_space in wanted


def in_regions(patterns: Iterable[str]) -> Predicate:
    match = compile_globs(patterns, "regions") or (lambda _name: False)
    return lambda e: match(e.region)


def is_direction(write: bool) -> Predicate:
    return lambda e: e.is_write == write


def of_kinds(kinds: Iterable[str]) -> Predicate:
    wanted = frozenset(kinds)
    return lambda e: e.kind in wanted


def from_initiators(patterns: Iterable[str]) -> Predicate:
    match = compile_globs(patterns, "initiators") or (lambda _name: False)
    return lambda e: match(e.initiator) or match(f"{e.initiator}:{e.requester_id}")


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
    discrete, residual = compile_parts(f)
    preds = [p for p in (discrete, residual) if p is not None]
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    return lambda e: discrete(e) and residual(e)  # type: ignore[misc]


def compile_parts(f: TraceFilter) -> tuple[Predicate | None, Predicate | None]:
    """``f`` as two predicates (None: accept all): the criteria that depend only on an event's
    ``index_key`` (address space, direction, kind, region, result, initiator), which the hub
    evaluates once per key, and the rest (address ranges, then sampling), evaluated per event
    that passed the first."""
    discrete: list[Predicate] = []
    if f.address_spaces:
        discrete.append(in_address_spaces(f.address_spaces))
    if f.direction != "any":
        discrete.append(is_direction(f.direction == "write"))
    if f.kinds:
        discrete.append(of_kinds(f.kinds))
    if f.regions:
        discrete.append(in_regions(f.regions))
    if f.initiators:
        discrete.append(from_initiators(f.initiators))
    if f.results != "any":
        discrete.append(with_results(f.results == "fault"))
    residual: list[Predicate] = []
    if f.ranges:
        residual.append(in_ranges(f.ranges))
    if f.sample_rate < 1:
        residual.append(sampled(f.sample_rate))
    return _all(discrete), _all(residual)


def _all(preds: list[Predicate]) -> Predicate | None:
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    return lambda e: all(p(e) for p in preds)


def index_key(e: Event, by_requester: bool) -> tuple[Any, ...]:
    """What the criteria ``compile_parts`` calls discrete depend on; the requester id only
    matters (and only counts) when some subscriber names initiators."""
    return (
        e.address_space,
        e.is_write,
        e.kind,
        e.region,
        e.result != 0,
        e.initiator,
        e.requester_id if by_requester else 0,
    )


@dataclass(eq=False)
class Subscriber:
    """One subscriber's filter and bounded queue; its stream drains ``take()``.

    ``accept``: the whole filter (None: everything); ``discrete`` and ``residual``: the same
    filter in the two parts ``compile_parts`` makes, which the hub uses. ``span``: when the
    filter names address ranges, their overall (start, end), so that a batch of accesses far
    from them is skipped without looking at each access. ``max_data``: the data bytes the
    subscriber will send of each event; an event holds at most one byte more while it waits
    in the queue (enough to tell that it was cut)."""

    accept: Predicate | None
    capacity: int
    span: tuple[int, int] | None = None
    queue: collections.deque[Event | Gap] = field(default_factory=collections.deque)
    lost: int = 0  # lost since the last queued item
    lost_total: int = 0
    sent: int = 0  # events taken from the queue (to be sent)
    wake: Callable[[], None] | None = None
    discrete: Predicate | None = None
    residual: Predicate | None = None
    max_data: int | None = None
    by_requester: bool = False  # its filter names initiators (which may name requester ids)

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
        keep = self.max_data
        if keep is not None and len(event.data) > keep + 1:
            event = event._replace(data=event.data[: keep + 1])
        q.append(event)
        if was_empty and self.wake is not None:
            self.wake()

    def take(self, limit: int) -> list[Event | Gap]:
        """Up to ``limit`` queued items in order; a gap that follows the last queued event
        (events lost since) comes out once the queue has drained up to it."""
        q = self.queue
        out: list[Event | Gap] = [q.popleft() for _ in range(min(limit, len(q)))]
        # Gaps sit in the queue only once something was lost: count them out then.
        self.sent += len(out) - (sum(type(x) is Gap for x in out) if self.lost_total else 0)
        if not q and self.lost:
            out.append(Gap(self.lost))
            self.lost = 0
        return out


Describe = Callable[[Any, int], Event]  # (a record, its seq) -> Event
Span = Callable[[Sequence[Any]], tuple[int, int]]  # records -> (lowest addr, end of highest)


def access_span(accesses: Sequence[AccessRecord]) -> tuple[int, int]:
    """The addresses a group of ``AccessRecord`` records touches, as one half-open span."""
    return min(a.addr for a in accesses), max(a.addr + max(a.size, 1) for a in accesses)


INDEX_KEYS = 4096  # distinct index keys remembered before the index starts again


class TraceHub:
    """The bus's subscribers. ``active`` is False when there are none: check it before
    recording anything.

    Accesses are offered in groups (``offer``): the caller records each one cheaply (an
    ``AccessRecord``, or whatever is cheapest for it to keep), and ``describe`` turns a record
    into an ``Event`` — looking up its region — only when some subscriber may want it. A
    subscriber that wants everything takes what fits in its queue and counts the rest as lost
    at once; one whose address ranges the group does not touch skips it. When no subscriber
    can take any of a group (``skip``), the caller need not even record it.

    The other subscribers are indexed: their criteria that depend only on an event's
    ``index_key`` are evaluated once per distinct key (remembered for ``INDEX_KEYS`` keys), so
    an event costs one lookup however many subscribers there are, plus the work of those
    whose criteria it passes. A thousand idle subscribers whose filters match nothing cost an
    access nothing.
    """

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.active = False
        self.seq = 0
        self.ended_sent = self.ended_lost = 0  # the counts of subscribers that left
        self._everything: list[Subscriber] = []  # subscribers with no criteria at all
        self._filtered: list[Subscriber] = []
        self._ranged: list[Subscriber] = []  # the filtered ones that name address ranges
        self._plain: list[Subscriber] = []  # the filtered ones with only ranges or sampling
        self._by_requester = False  # some filter names initiators (then ids matter)
        self._index: dict[tuple[Any, ...], tuple[Subscriber, ...]] = {}

    def subscribe(self, f: TraceFilter, capacity: int, max_data: int | None = None) -> Subscriber:
        """Add a subscriber with filter ``f``, a queue of ``capacity`` events and (when
        given) ``max_data`` bytes of data kept per queued event."""
        span = (min(s for s, _ in f.ranges), max(e for _, e in f.ranges)) if f.ranges else None
        discrete, residual = compile_parts(f)
        sub = Subscriber(
            compile_filter(f),
            max(1, capacity),
            span,
            discrete=discrete,
            residual=residual,
            max_data=max_data,
            by_requester=bool(f.initiators),
        )
        self.subscribers.append(sub)
        self._reindex()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)
            self.ended_sent += sub.sent
            self.ended_lost += sub.lost_total
            self._reindex()

    def _reindex(self) -> None:
        subs = self.subscribers
        self.active = bool(subs)
        self._everything = [s for s in subs if s.accept is None]
        self._filtered = [s for s in subs if s.accept is not None]
        self._ranged = [s for s in self._filtered if s.span is not None]
        self._plain = [s for s in self._filtered if s.discrete is None]
        self._by_requester = any(s.by_requester for s in self._filtered)
        self._index = {}

    def skip(self, n: int, span_of: Callable[[], tuple[int, int]]) -> bool:
        """Before a group of ``n`` accesses runs: whether no subscriber can take any of them,
        each either naming address ranges away from all of them (``span_of()``: the addresses
        they touch) or wanting everything with no room left. Then the group is accounted for
        here — lost to the subscribers that wanted it — and need not be recorded at all."""
        if len(self._ranged) < len(self._filtered):
            return False  # a filter without ranges may want anything
        full = []
        for sub in self._everything:
            if len(sub.queue) < sub.capacity:
                return False
            full.append(sub)
        if self._ranged:
            span = span_of()
            for sub in self._ranged:
                assert sub.span is not None
                if not (span[1] <= sub.span[0] or sub.span[1] <= span[0]):
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
        for sub in self._everything:  # wants every event: as many as fit, the rest are lost
            room = max(0, min(n, sub.capacity - len(sub.queue)))
            for i in range(room):
                event = events[i]
                if event is None:
                    event = events[i] = describe(accesses[i], base + i + 1)
                sub._put(event)
            if room < n:
                sub.lost += n - room
                sub.lost_total += n - room
        if not self._filtered:
            return
        far: set[Subscriber] = set()
        if self._ranged:
            span = span_of(accesses)
            for sub in self._ranged:
                assert sub.span is not None
                if span[1] <= sub.span[0] or sub.span[1] <= span[0]:
                    far.add(sub)
            if len(far) == len(self._filtered):
                return
        # Subscribers with no criteria but ranges and sampling take every event in reach;
        # the others are found through the index, leaving out those out of reach.
        for sub in self._plain:
            if sub in far:
                continue
            residual, put = sub.residual, sub._put
            for i in range(n):
                event = events[i]
                if event is None:
                    event = events[i] = describe(accesses[i], base + i + 1)
                if residual is None or residual(event):
                    put(event)
        if len(self._filtered) == len(self._plain):
            return
        index = self._index
        local: dict[tuple[Any, ...], tuple[Subscriber, ...]] | None = {} if far else None
        by_requester = self._by_requester
        for i in range(n):
            event = events[i]
            if event is None:
                event = events[i] = describe(accesses[i], base + i + 1)
            key = index_key(event, by_requester)
            subs = local.get(key) if local is not None else index.get(key)
            if subs is None:
                subs = index.get(key)
                if subs is None:
                    if len(index) >= INDEX_KEYS:
                        index.clear()
                    subs = index[key] = tuple(
                        s for s in self._filtered if s.discrete is not None and s.discrete(event)
                    )
                if local is not None:
                    subs = local[key] = tuple(s for s in subs if s not in far)
            for sub in subs:
                residual = sub.residual
                if residual is None or residual(event):
                    sub._put(event)
