"""mmiobus: QEMU's memory model (region trees, address spaces, flat views, dispatch) as a
networked memory bus.

Packages, by concept:

``mmiobus.memory``   the memory model itself: pure Python, no network, usable alone
``mmiobus.machine``  machine descriptions: YAML, schema, built-in machines, QEMU import
``mmiobus.server``   the bus server: its core, the device domain, the gRPC services
``mmiobus.client``   the Python clients (``Bus``, ``AsyncBus``)
``mmiobus.devices``  the device SDK and example device models
``mmiobus.cli``      the ``mmiobus`` command line
``mmiobus.v1``       the wire contract (generated from ``proto/mmiobus/v1/*.proto``)

and three small modules every role shares: ``mmiobus.wire`` (values <-> messages),
``mmiobus.units`` (sizes and durations as people write them) and ``mmiobus.endpoints`` (bus
addresses and channels).
"""

import os as _os
from importlib import metadata as _metadata

# gRPC's core registers fork handlers that start its threads again in a forked child. A child
# that only executes another program (a device process, QEMU, a simulator: every child this
# package starts) can then die of SIGSEGV in such a thread before it gets there: with uvloop,
# whose children are forked, 73 of 1,500 children of a process with calls in flight did
# (tests/bus/test_children.py). Without the handlers none did, and starting them took half as
# long. Set here, before gRPC is imported; a value already in the environment is kept.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


def _version() -> str:
    try:
        return _metadata.version("mmiobus")
    except _metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "0+unknown"


__version__ = _version()
