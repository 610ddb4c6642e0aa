"""``Trace``: every access the bus serves that passes a subscriber's filter, streamed in batches.

Filtering happens in the server before anything is queued; each subscriber has a bounded queue,
so one that falls behind loses events (reported in-band as gaps) and never slows the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import structlog
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.wire import TWO64, size_from_pb

from ..core import BusCore
from ..errors import InvalidRequest, LimitExceeded
from ..trace import Event, Gap, TraceFilter
from .status import abort
from .streams import first_of

log = structlog.get_logger("mmiobus.trace")

_DIRECTIONS = {pb.READS: "read", pb.WRITES: "write"}
_RESULTS = {pb.OK_ONLY: "ok", pb.FAULTS_ONLY: "fault"}


def trace_filter(request: pb.TraceRequest, address_spaces: tuple[str, ...]) -> TraceFilter:
    """The filter a Trace request asks for; ``address_spaces`` are its ids, resolved."""
    for i, r in enumerate(request.ranges):
        if r.size == 0:
            raise InvalidRequest(f"ranges[{i}].size: 0 (a range needs at least one byte)")
    try:
        return TraceFilter(
            ranges=tuple((r.start, _range_end(r)) for r in request.ranges),
            address_spaces=address_spaces,
            regions=tuple(request.regions),
            direction=_DIRECTIONS.get(request.direction, "any"),
            kinds=tuple(request.kinds),
            initiators=tuple(request.initiators),
            results=_RESULTS.get(request.results, "any"),
            sample_rate=request.sample_rate or 1.0,
        )
    except ValueError as e:
        raise InvalidRequest(str(e)) from None


def _range_end(r: pb.AddressRange) -> int:
    # A size of 2**64 (0xffffffffffffffff on the wire) means "to the end of the address space".
    size = size_from_pb(r.size)
    return TWO64 if size == TWO64 else r.start + size


def trace_batch(items: list[Event | Gap], max_data: int) -> pb.TraceBatch:
    """One stream message of trace events. Each event is built in place (``add``: building it
    apart and then adding it would copy it), with only the fields that differ from their
    defaults (each keyword costs about as much as a field)."""
    batch = pb.TraceBatch()
    add = batch.events.add
    for item in items:
        if isinstance(item, Gap):
            add(lost=item.lost)
            continue
        seq, ts, space, addr, size, write, data, result, region, offset, kind, who, rid, lat = item
        e = add(
            seq=seq,
            timestamp_ns=ts,
            address_space=space,
            addr=addr,
            size=size,
            data=data[:max_data],
            region=region,
            offset=offset,
            kind=kind,
            initiator=who,
        )
        if write:
            e.write = True
        if len(data) > max_data:
            e.data_truncated = True
        if result:
            e.result = result
        if rid:
            e.requester_id = rid
        if lat:
            e.latency_ns = lat
    return batch


class TraceService:
    """The ``Trace`` RPC of ``mmiobus.v1.Bus``."""

    def __init__(self, core: BusCore) -> None:
        self.core = core

    async def Trace(
        self, request: pb.TraceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TraceBatch]:
        core = self.core
        settings = core.config.trace
        try:
            spaces = tuple(
                core.describer.space_id(core.space(key, f"address_spaces[{i}]"))
                for i, key in enumerate(request.address_spaces)
            )
            f = trace_filter(request, spaces)
            max_data = request.max_data_bytes or settings.max_data_bytes
            if max_data > settings.max_data_limit:
                raise LimitExceeded(
                    f"max_data_bytes {max_data} exceeds the server's limit of "
                    f"{settings.max_data_limit} (--trace-max-data)"
                )
            capacity = min(
                request.queue_capacity or settings.queue_capacity, settings.max_queue_capacity
            )
        except Exception as e:
            await abort(context, e)
            return
        wake = asyncio.Event()
        sub = core.trace.subscribe(f, capacity, max_data)
        sub.wake = wake.set
        # Read the peer now: asking a cancelled call for it crashes grpc (a segfault).
        peer = context.peer()
        log.info(
            "trace subscriber joined",
            peer=peer,
            subscribers=len(core.trace.subscribers),
            queue=capacity,
        )
        try:
            while not core.stopping.is_set():
                wake.clear()
                if not sub.queue and not sub.lost:
                    await first_of(wake.wait(), core.stopping.wait())
                    continue
                if len(sub.queue) < settings.batch:
                    await asyncio.sleep(settings.flush_seconds)  # let a batch gather
                yield trace_batch(sub.take(settings.batch), max_data)
        finally:
            core.trace.unsubscribe(sub)
            log.info("trace subscriber left", peer=peer, lost=sub.lost_total)
