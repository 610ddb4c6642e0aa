"""One core for a process that hands every access from thread to thread.

A CPU's access that leaves the engine crosses several threads before it is answered: the
engine posts it to the bus loop's thread and sleeps; gRPC's own threads (its poller, its
event engine's) carry the message out and the answer in and wake the loop, which wakes the
engine. Only one of them has work at a time (the Python ones also share the GIL), but when
the scheduler spreads them over cores, each hand-off wakes a core that went idle: tens of
microseconds on a virtual machine, several times the work of the access itself. On one core a
hand-off is a context switch. (Measured on the 2-core machine of ``bench/guest.py``: a guest
read of a device process's register took 393 us with only the engine and the loop sharing a
core, 360 us with the whole server on it, 264 us with the device process on one core too.)

So by default, while a CPU runs, every thread of the process that runs it (the server, or
``cpu run``) is pinned to the core the loop's thread runs on when the CPU starts, and given
its cores back when it stops (Linux; elsewhere nothing is done); the server's threads also
while a ``cpu run`` process is attached, since each of its accesses crosses them too. Threads
started meanwhile inherit the pin. The price: the server's other work shares that core instead
of spreading over several (the scheduler still gives each its turn). ``--no-pin`` (``serve``
and ``cpu run``) leaves every thread to the scheduler. ``device run --pin`` pins a device
process that mostly answers one CPU.
"""

from __future__ import annotations

import os


def current_core() -> int | None:
    """The core the calling thread runs on now (Linux), else None."""
    try:
        with open("/proc/thread-self/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return int(fields[36])  # field 39 of proc(5): the CPU it last ran on


Mask = set[int]


Masks = dict[int, Mask]  # thread id -> the cores it had


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return []


def pin_process(core: int | None) -> Masks | None:
    """Pin every thread of this process to ``core`` (threads started later inherit it from
    the thread that starts them); the masks they had (for ``unpin_process``), or None where
    it cannot be done."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        allowed = os.sched_getaffinity(0)
    except OSError:
        return None
    if core not in allowed or len(allowed) < 2:
        return None
    previous: Masks = {0: allowed}  # 0: for threads started while pinned
    for tid in _threads():
        try:
            previous[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {core})
        except OSError:  # the thread ended meanwhile
            continue
    return previous


def pin_process_here() -> tuple[int, Masks] | None:
    """``pin_process`` to the core the calling thread runs on: (that core, the masks)."""
    core = current_core()
    previous = pin_process(core)
    return None if core is None or previous is None else (core, previous)


def unpin_process(previous: Masks | None) -> None:
    """Give every thread the cores it had before ``pin_process`` (threads started since: the
    cores of the thread that pinned)."""
    if previous is None:
        return
    for tid in _threads():
        try:
            os.sched_setaffinity(tid, previous.get(tid, previous[0]))
        except OSError:
            continue


class SharedPin:
    """The process pinned while any of its users (the CPUs a server runs or has attached)
    runs: by the first to start, on its core; given back when the last stops. Used from one
    thread."""

    def __init__(self) -> None:
        self.users = 0
        self.core: int | None = None
        self._masks: Masks | None = None

    def acquire(self) -> int | None:
        """One more user; the core the process is pinned to (None: not pinned)."""
        if not self.users:
            pinned = pin_process_here()
            self.core, self._masks = pinned if pinned is not None else (None, None)
        self.users += 1
        return self.core

    def release(self) -> None:
        self.users -= 1
        if not self.users:
            unpin_process(self._masks)
            self.core, self._masks = None, None


process_pin = SharedPin()  # the process's, shared by the CPUs it runs
