"""One core for the CPU engine's thread and the bus loop's thread.

The engine and the loop that carries its accesses hand work to each other on every access
that leaves the CPU: the engine posts the access and sleeps until the loop answers. Only one
of the two runs at a time (they also share the GIL), but when the scheduler puts them on two
cores, each hand-off wakes a core that went idle — tens of microseconds on a virtual machine,
several times the work of the access itself. On one core a hand-off is a context switch.

So by default both threads are pinned to the core the loop's thread runs on when the CPU
starts, until it stops (Linux; elsewhere nothing is done). The price: while the guest
computes in RAM, the loop shares its core with it instead of running beside it (the scheduler
still gives each its turn). ``--no-pin`` (``serve`` and ``cpu run``) leaves both to the
scheduler.
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


def pin(core: int | None) -> Mask | None:
    """Pin the calling thread to ``core``; the mask it had (for ``unpin``), or None where it
    cannot be done (no such call, the core not allowed, or only one core anyway)."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        allowed = os.sched_getaffinity(0)
        if core not in allowed or len(allowed) < 2:
            return None
        os.sched_setaffinity(0, {core})
    except OSError:
        return None
    return allowed


def pin_here() -> tuple[int, Mask] | None:
    """Pin the calling thread to the core it runs on: (that core, the mask it had), or None."""
    core = current_core()
    previous = pin(core)
    return None if core is None or previous is None else (core, previous)


def unpin(previous: Mask | None) -> None:
    """Give the calling thread back the mask ``pin`` returned (None: nothing to undo)."""
    if previous is not None:
        try:
            os.sched_setaffinity(0, previous)
        except OSError:
            pass
