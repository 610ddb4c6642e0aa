"""An interrupt-line watcher that falls behind loses changes and is told so, in-band."""

from __future__ import annotations

from mmiobus.server.irq import IrqRegistry
from mmiobus.server.services.irqs import _Changes


def test_changes_past_the_queue_are_counted_and_reported_where_they_were_lost():
    irqs = IrqRegistry()
    changes = _Changes(["uart0.*"], capacity=3)
    irqs.watch(changes)
    for level in (True, False, True, False, True):  # 5 changes, room for 3
        irqs.set("uart0.irq", level)
    irqs.set("timer0.irq", True)  # not watched
    taken = [changes.take() for _ in range(4)]
    assert [t[:2] for t in taken[:3]] == [("uart0.irq", True), ("uart0.irq", False),
                                         ("uart0.irq", True)]  # fmt: skip
    assert taken[3] == 2  # the gap comes after the last change queued
    assert changes.take() is None


def test_a_gap_sits_before_the_first_change_queued_after_it():
    irqs = IrqRegistry()
    changes = _Changes([], capacity=1)
    irqs.watch(changes)
    irqs.set("a.irq", True)
    irqs.set("a.irq", False)  # lost: the queue is full
    irqs.set("a.irq", True)  # lost
    assert changes.take()[:2] == ("a.irq", True)
    irqs.set("a.irq", False)  # queued after the gap
    assert changes.take() == 2
    assert changes.take()[:2] == ("a.irq", False)
    assert changes.take() is None
