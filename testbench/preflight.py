"""What can be checked before a bench starts, each problem one line that points into the bench
file: processes in network namespaces that cannot be run there, and ports the bus is to listen
on that something else already holds."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from mmiobus.endpoints import bind_error

from .load import Bench


def hosts_problem(bench: Bench) -> str | None:
    """Processes in network namespaces need root, ``ip`` and the namespace."""
    spec = bench.spec
    hosts: list[tuple[tuple[str, ...], str | None]] = [(("bus", "host"), spec.bus.host)]
    hosts += [(("processes", n, "host"), p.host) for n, p in spec.processes.items()]
    for path, host in hosts:
        if host is None:
            continue
        if os.geteuid() != 0 or shutil.which("ip") is None:
            return (f"{bench.where(path)}: running in network namespace {host!r} needs root and "
                    "iproute2 (ip netns)")  # fmt: skip
        if not Path("/run/netns", host).exists():
            return (f"{bench.where(path)}: there is no network namespace {host!r} (make it with "
                    f"`ip netns add {host}`)")  # fmt: skip
    return None


def ports_problem(bench: Bench, listen: list[str]) -> str | None:
    """A TCP port the bus is to listen on (``listen``: the bench's ``bus.listen`` or what the
    command line says instead) that something else holds."""
    spec = bench.spec.bus
    if spec.host is not None:
        return None  # another network namespace: its ports are not this one's
    addresses = [(("bus", "listen", i), a) for i, a in enumerate(listen)]
    addresses += [(("bus", "metrics", i), a) for i, a in enumerate(spec.metrics)]
    for path, address in addresses:
        port = address.rpartition(":")[2]
        if address.startswith("unix:") or not port.isdigit() or int(port) == 0:
            continue
        e = bind_error(address)
        if e is None or e.errno != errno.EADDRINUSE:
            continue  # free, or the bus says why it cannot listen there
        given = path[1] == "metrics" or listen == spec.listen
        where = bench.where(path) if given else "--listen"
        return (f"{where}: {address} is in use (another bus or bench?); stop it, or "
                "choose another port (port 0: any free one)")  # fmt: skip
    return None
