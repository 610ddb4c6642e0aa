"""Shared test configuration."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from support.servers import ServerProcess, start_server

settings.register_profile(
    "default",
    max_examples=int(os.environ.get("MMIOBUS_HYPOTHESIS_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("default")


@pytest.fixture
def server():
    """A fresh `mmiobus serve` process on the built-in default machine."""
    srv = start_server()
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture(scope="module")
def shared_server():
    """One server for a whole test module (tests must not depend on each other's changes)."""
    srv = start_server()
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture(params=["tcp", "unix"])
def address(request, shared_server: ServerProcess) -> str:
    """The shared server's address, over TCP and over a unix socket."""
    return shared_server.tcp if request.param == "tcp" else shared_server.unix
