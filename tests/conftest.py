"""Shared test configuration: hypothesis profiles and the fixtures that start servers.

Helpers live in the ``support`` package (``pythonpath = ["tests"]`` in pyproject.toml makes it
importable); test modules import what they use from it by name.

Hypothesis profiles (choose with ``MMIOBUS_HYPOTHESIS_PROFILE``, or pytest's
``--hypothesis-profile``):

- ``derandomized`` (the default): every run tries the same examples, with no example database,
  so a run in CI is reproducible and a failure prints the blob that replays it
  (``@reproduce_failure``).
- ``random``: fresh examples on every run, failures kept in the example database (``.hypothesis/``)
  and replayed first next time; for exploring, not for CI.

``MMIOBUS_HYPOTHESIS_EXAMPLES`` sets the number of examples of either (100 by default).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import HealthCheck, settings
from mmiobus.v1 import bus_pb2_grpc
from support.rig import RigFactory
from support.servers import ServerFactory, ServerProcess, start_server
from support.stubs import aio_bus_stub, bus_stub

_EXAMPLES = int(os.environ.get("MMIOBUS_HYPOTHESIS_EXAMPLES", "100"))
settings.register_profile(
    "derandomized",
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.register_profile(
    "random",
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
    print_blob=True,
)
settings.load_profile(os.environ.get("MMIOBUS_HYPOTHESIS_PROFILE", "derandomized"))


@pytest.fixture(scope="module")
def machine_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """A factory of servers for the test module: ``machine_server(machine, *flags, files=...,
    env=...)`` starts `mmiobus serve` on ``machine`` (YAML text, a description ``Path``, or None
    for the built-in machine) and returns it listening; every server it started is stopped at the
    end of the module, and each must exit with status 0."""
    factory = ServerFactory(tmp_path_factory.mktemp("machines"))
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def machine_rig(machine_server: ServerFactory) -> Iterator[RigFactory]:
    """A factory of rigs for the test module: ``machine_rig(machine, devices, *flags,
    files=...)`` starts a server (``machine_server``) and one device process per ``(target,
    region, args)`` tuple, and returns a ``support.rig.Rig`` once every device serves; the
    client and devices stop at the end of the module, then the servers."""
    factory = RigFactory(machine_server)
    yield factory
    factory.close()


@pytest.fixture
def spot(request: pytest.FixtureRequest) -> int:
    """Memory for this test alone: the next block of its module's ``SPOTS`` (a
    ``support.spots.Spots``), so that tests sharing a server stay out of each other's way."""
    spots = getattr(request.module, "SPOTS", None)
    if spots is None:
        raise pytest.UsageError(f"{request.module.__name__} uses `spot` but defines no SPOTS")
    return next(spots)


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    """A fresh `mmiobus serve` process on the built-in default machine."""
    srv = start_server()
    yield srv
    status = srv.stop()
    assert status == 0, srv.log()


@pytest.fixture(scope="module")
def shared_server(machine_server: ServerFactory) -> ServerProcess:
    """One server on the built-in machine for a whole test module (tests must not depend on
    each other's changes)."""
    return machine_server()


@pytest.fixture(params=["tcp", "unix"])
def address(request: pytest.FixtureRequest, shared_server: ServerProcess) -> str:
    """The shared server's address, over TCP and over a unix socket."""
    return shared_server.tcp if request.param == "tcp" else shared_server.unix


@pytest.fixture
def stub(address: str) -> Iterator[bus_pb2_grpc.BusStub]:
    """A raw blocking ``Bus`` stub on the shared server, over TCP and over a unix socket."""
    with bus_stub(address) as s:
        yield s


@pytest.fixture
async def aio_stub(address: str) -> AsyncIterator[bus_pb2_grpc.BusStub]:
    """A raw asyncio ``Bus`` stub on the shared server, over TCP and over a unix socket."""
    async with aio_bus_stub(address) as s:
        yield s
