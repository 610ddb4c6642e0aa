"""A region a device serves cannot be deleted, unmapped, disabled, moved, resized or overlaid at
a higher priority by an identity without the admin role, directly or through the containers
and aliases that show it; the rest of the topology stays open to the topology role, and the
region is free again once its device leaves."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import grpc
import pytest
from mmiobus.client import Bus, PermissionDenied
from mmiobus.credentials import Credentials
from mmiobus.v1 import devices_pb2 as dpb
from support.auth import RawAttach, bearer, write_auth_file, write_token

UART = 0x1000_0000  # uart0 on the built-in machine: 8 bytes in `system`
_n = itertools.count()


@pytest.fixture(scope="module")
def bus(machine_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("protected")
    tokens = {}
    identities = []
    for name, roles in (("shaper", ["topology", "read"]), ("admin", ["all"]),
                        ("device", ["device"])):  # fmt: skip
        tokens[name], path = write_token(folder, name)
        identities.append({"name": name, "token_file": path.name, "roles": roles})
    server = machine_server(None, "--auth", str(write_auth_file(folder, identities)))
    return server, tokens


@pytest.fixture
def served(bus) -> Iterator[None]:
    """uart0 served by a device for the test."""
    server, tokens = bus
    with grpc.insecure_channel(server.tcp) as channel:
        device = RawAttach(channel, bearer(tokens["device"]))
        try:
            device.hello("uart0")
            device.send(
                region=dpb.RegionRequest(request_id=1, claim=dpb.ClaimRegion(region="uart0"))
            )
            assert device.receive().region.code == 0
            yield
        finally:
            device.close()


def _as(bus, name: str) -> Bus:
    server, tokens = bus
    return Bus(server.tcp, credentials=Credentials(tokens[name]))


def _fresh(prefix: str) -> str:
    return f"{prefix}{next(_n)}"


CHANGES = {
    "delete": lambda t: t.delete_region("uart0"),
    "unmap": lambda t: t.remove_subregion("uart0"),
    "disable": lambda t: t.set_enabled("uart0", False),
    "resize": lambda t: t.set_size("uart0", 4),
    "move": lambda t: t.set_address("uart0", 0x2000_0000),
    "lower": lambda t: t.set_priority("uart0", -1),
    "disable its container": lambda t: t.set_enabled("system", False),
    "delete its address space": lambda t: t.delete_address_space("memory"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_served_region_is_kept_from_the_topology_role(bus, served, change):
    with _as(bus, "shaper") as shaper:
        with pytest.raises(PermissionDenied) as refused, shaper.transaction() as t:
            CHANGES[change](t)
        message = str(refused.value)
        assert "uart0" in message and "admin role" in message and "'shaper'" in message
        assert "nothing was applied" in message
        assert "uart0" in shaper.mtree()


def test_a_region_over_a_served_one_at_a_higher_priority_is_refused(bus, served):
    with _as(bus, "shaper") as shaper:
        ram = _fresh("cover")
        refused = pytest.raises(PermissionDenied, match="would overlay region 'uart0'")
        with refused, shaper.transaction() as t:
            t.create_region(ram, "ram", 0x1000)
            t.add_subregion("system", ram, UART, priority=1)
        assert ram not in shaper.mtree()  # the whole transaction was refused


def test_regions_under_or_beside_a_served_one_are_allowed(bus, served):
    with _as(bus, "shaper") as shaper:
        below, beside = _fresh("below"), _fresh("beside")
        with shaper.transaction() as t:
            t.create_region(below, "ram", 0x1000)
            t.add_subregion("system", below, UART, priority=-1)
            t.create_region(beside, "ram", 0x1000)
            t.add_subregion("system", beside, UART + 0x1000, priority=5)
        with shaper.transaction() as t:
            t.set_enabled(below, False)
            t.delete_region(beside)


def test_raising_a_container_that_would_overlay_is_refused(bus, served):
    """A container below the device may hold anything; raising it over the device is an
    overlay."""
    with _as(bus, "shaper") as shaper:
        box, ram = _fresh("box"), _fresh("inbox")
        with shaper.transaction() as t:
            t.create_region(box, "container", 0x1000)
            t.add_subregion("system", box, UART, priority=-1)
            t.create_region(ram, "ram", 0x100)
            t.add_subregion(box, ram, 0)
        with pytest.raises(PermissionDenied, match="would overlay"), shaper.transaction() as t:
            t.set_priority(box, 1)


def test_an_alias_that_shows_a_served_region_is_kept_too(bus, served):
    with _as(bus, "admin") as admin, admin.transaction() as t:
        window = _fresh("window")
        t.create_region(window, "alias", 0x8, target="uart0")
        t.add_subregion("system", window, 0x3000_0000)
    refused = pytest.raises(PermissionDenied, match="shows region 'uart0'")
    with _as(bus, "shaper") as shaper, refused, shaper.transaction() as t:
        t.remove_subregion(window)


def test_the_admin_role_may_change_a_served_region(bus, served):
    with _as(bus, "admin") as admin:
        with admin.transaction() as t:
            t.set_enabled("uart0", False)
        with admin.transaction() as t:
            t.set_enabled("uart0", True)


def test_a_region_no_device_serves_is_open_to_the_topology_role(bus):
    with _as(bus, "shaper") as shaper:
        with shaper.transaction() as t:
            t.set_enabled("uart0", False)
        with shaper.transaction() as t:
            t.set_enabled("uart0", True)
