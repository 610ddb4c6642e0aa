"""Interrupt lines for clients: ``GetIrqs`` (levels now) and ``WatchIrqs`` (levels, then every
change). A watcher that falls behind loses changes, never slows the bus: each gap arrives
in-band as an event with ``lost`` set, as in traces."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator

import grpc
from mmiobus.v1 import devices_pb2 as pb

from ..core import BusCore
from ..irq import IrqLine, line_matcher
from .status import abort, answers_errors
from .streams import first_of

QUEUE = 100_000  # changes kept for one watcher that is behind


class _Changes:
    """One watcher's queue of (line, level, time) changes, with the count of those lost since
    the last one queued."""

    def __init__(self, patterns: list[str], capacity: int = QUEUE) -> None:
        self.patterns = patterns
        self.matches = line_matcher(patterns)
        self.capacity = capacity
        self.items: collections.deque[tuple[str, bool, int] | int] = collections.deque()
        self.queued = 0
        self.lost = 0
        self.wake = asyncio.Event()

    def __call__(self, line: IrqLine, now: int) -> None:
        if not self.matches(line.name):
            return
        if self.queued >= self.capacity:
            self.lost += 1
            return
        if self.lost:  # the gap sits where the changes were lost: before this one
            self.items.append(self.lost)
            self.lost = 0
        self.items.append((line.name, line.level, now))
        self.queued += 1
        self.wake.set()

    def take(self) -> tuple[str, bool, int] | int | None:
        """The next change, or the number lost, or None when there is nothing."""
        if self.items:
            item = self.items.popleft()
            if not isinstance(item, int):
                self.queued -= 1
            return item
        if self.lost:
            lost, self.lost = self.lost, 0
            return lost
        return None


class IrqService:
    """``GetIrqs`` and ``WatchIrqs``."""

    def __init__(self, core: BusCore) -> None:
        self.core = core

    @answers_errors
    async def GetIrqs(
        self, request: pb.GetIrqsRequest, context: grpc.aio.ServicerContext
    ) -> pb.IrqLines:
        return pb.IrqLines(
            lines=[
                pb.IrqLine(name=ln.name, level=ln.level, changes=ln.changes)
                for ln in self.core.irqs.select(request.lines)
            ]
        )

    async def WatchIrqs(
        self, request: pb.WatchIrqsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.IrqEvent]:
        core = self.core
        try:
            changes = _Changes(list(request.lines))
        except Exception as e:
            await abort(context, e)
            return
        stop = core.irqs.watch(changes)
        seq = 0  # numbered as delivered, so it increases by one per event
        try:
            now = time.monotonic_ns()
            for line in core.irqs.select(changes.matches):
                seq += 1
                yield pb.IrqEvent(
                    line=line.name, level=line.level, sequence=seq, timestamp_ns=now, snapshot=True
                )
            while not core.stopping.is_set():
                item = changes.take()
                if item is None:
                    changes.wake.clear()
                    await first_of(changes.wake.wait(), core.stopping.wait())
                    continue
                seq += 1
                if isinstance(item, int):
                    yield pb.IrqEvent(sequence=seq, lost=item)
                    continue
                name, level, when = item
                yield pb.IrqEvent(line=name, level=level, sequence=seq, timestamp_ns=when)
        finally:
            stop()
