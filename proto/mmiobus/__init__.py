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

from importlib import metadata as _metadata


def _version() -> str:
    try:
        return _metadata.version("mmiobus")
    except _metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "0+unknown"


__version__ = _version()
