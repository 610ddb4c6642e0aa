"""Every RPC of Bus and Devices asks for the role ``authz.RULES`` names: callers without
credentials, or with a token the bus does not know, are UNAUTHENTICATED; identities without the
role are PERMISSION_DENIED, told which role is missing; identities with it are served."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from mmiobus.server.authz import RULES, Need
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc, devices_pb2_grpc
from mmiobus.v1 import devices_pb2 as dpb
from support.auth import RawAttach, bearer, write_auth_file, write_token

ROLES = ["read", "write", "trace", "topology", "device", "admin"]
IDENTITIES = ["anonymous", "stranger", *ROLES, "everything"]
_n = itertools.count()

Call = Callable[[grpc.Channel, tuple[tuple[str, str], ...]], object]


def _bus(ch: grpc.Channel) -> bus_pb2_grpc.BusStub:
    return bus_pb2_grpc.BusStub(ch)


def _devices(ch: grpc.Channel) -> devices_pb2_grpc.DevicesStub:
    return devices_pb2_grpc.DevicesStub(ch)


def _read() -> pb.RwRequest:
    return pb.RwRequest(addr=0x1000, read=4)


def _write() -> pb.RwRequest:
    return pb.RwRequest(addr=0x2000, write=b"\x5a")


def _stream(request: pb.RwRequest) -> Call:
    def call(ch, md):
        replies = _bus(ch).RwStream(iter([pb.RwStreamRequest(accesses=[request])]), metadata=md)
        return list(replies)

    return call


def _first(call: Any) -> object:
    """The first message of a server stream, then cancel it."""
    try:
        return next(call)
    finally:
        call.cancel()


def _attach(ch, md):
    device = RawAttach(ch, md)
    try:
        assert device.hello(f"dev{next(_n)}").WhichOneof("msg") == "welcome"
    finally:
        device.close()


def _apply(ch, md):
    region = pb.CreateRegion(id=f"scratch{next(_n)}", kind=pb.RAM, size=0x1000)
    op = pb.TopologyOp(create_region=region)
    return _bus(ch).ApplyTopology(pb.ApplyTopologyRequest(ops=[op]), metadata=md, timeout=10)


# (RPC, what the call does) -> (the call, the role it needs (None: any known identity), the
# codes it ends with when allowed).
OK = {grpc.StatusCode.OK}
IDLE = {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}  # a stream with nothing to say
CALLS: dict[tuple[str, str], tuple[Call, str | None, set[grpc.StatusCode]]] = {
    ("/mmiobus.v1.Bus/Rw", "read"): (
        lambda ch, md: _bus(ch).Rw(_read(), metadata=md, timeout=10), "read", OK),
    ("/mmiobus.v1.Bus/Rw", "write"): (
        lambda ch, md: _bus(ch).Rw(_write(), metadata=md, timeout=10), "write", OK),
    ("/mmiobus.v1.Bus/RwStream", "read"): (_stream(_read()), "read", OK),
    ("/mmiobus.v1.Bus/RwStream", "write"): (_stream(_write()), "write", OK),
    ("/mmiobus.v1.Bus/RwBatch", "read"): (
        lambda ch, md: _bus(ch).RwBatch(pb.RwBatchRequest(accesses=[_read()]), metadata=md),
        "read", OK),
    ("/mmiobus.v1.Bus/RwBatch", "write"): (
        lambda ch, md: _bus(ch).RwBatch(pb.RwBatchRequest(accesses=[_write()]), metadata=md),
        "write", OK),
    ("/mmiobus.v1.Bus/ApplyTopology", "create a region"): (_apply, "topology", OK),
    ("/mmiobus.v1.Bus/GetTopology", ""): (
        lambda ch, md: _bus(ch).GetTopology(pb.GetTopologyRequest(), metadata=md), "read", OK),
    ("/mmiobus.v1.Bus/Mtree", ""): (
        lambda ch, md: _bus(ch).Mtree(pb.MtreeRequest(), metadata=md), "read", OK),
    ("/mmiobus.v1.Bus/GetInfo", ""): (
        lambda ch, md: _bus(ch).GetInfo(pb.GetInfoRequest(), metadata=md), None, OK),
    ("/mmiobus.v1.Bus/Trace", ""): (
        lambda ch, md: _first(_bus(ch).Trace(pb.TraceRequest(), metadata=md, timeout=0.3)),
        "trace", IDLE),
    ("/mmiobus.v1.Bus/WatchTopology", ""): (
        lambda ch, md: _first(
            _bus(ch).WatchTopology(pb.WatchTopologyRequest(), metadata=md, timeout=10)),
        "read", OK),
    ("/mmiobus.v1.Devices/Attach", "hello"): (_attach, "device", OK),
    ("/mmiobus.v1.Devices/ListDevices", ""): (
        lambda ch, md: _devices(ch).ListDevices(dpb.ListDevicesRequest(), metadata=md),
        "read", OK),
    ("/mmiobus.v1.Devices/ResetDevice", "of no device"): (
        lambda ch, md: _devices(ch).ResetDevice(dpb.ResetDeviceRequest(name="nosuch"),
                                                metadata=md),
        "admin", {grpc.StatusCode.NOT_FOUND}),
    ("/mmiobus.v1.Devices/GetIrqs", ""): (
        lambda ch, md: _devices(ch).GetIrqs(dpb.GetIrqsRequest(), metadata=md), "read", OK),
    ("/mmiobus.v1.Devices/WatchIrqs", ""): (
        lambda ch, md: _first(
            _devices(ch).WatchIrqs(dpb.WatchIrqsRequest(), metadata=md, timeout=0.3)),
        "read", IDLE),
}  # fmt: skip


@pytest.fixture(scope="module")
def guarded(machine_server, tmp_path_factory):
    """A bus whose auth file has one identity per role, and one with every role."""
    folder = tmp_path_factory.mktemp("auth")
    tokens = {}
    identities = []
    for role in [*ROLES, "everything"]:
        tokens[role], path = write_token(folder, role)
        roles = ["all"] if role == "everything" else [role]
        identities.append({"name": role, "token_file": path.name, "roles": roles})
    tokens["stranger"] = "not-a-token-of-this-bus"
    server = machine_server(None, "--auth", str(write_auth_file(folder, identities)))
    with grpc.insecure_channel(server.tcp) as channel:
        yield channel, tokens


def _code(call: Call, channel: grpc.Channel, md: tuple[tuple[str, str], ...]):
    try:
        call(channel, md)
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def test_the_rules_cover_every_rpc_of_both_services():
    methods = {
        f"/{service.full_name}/{m.name}"
        for service in (pb.DESCRIPTOR.services_by_name["Bus"],
                        dpb.DESCRIPTOR.services_by_name["Devices"])
        for m in service.methods
    }  # fmt: skip
    assert set(RULES) == methods
    assert {rpc for rpc, _ in CALLS} == methods


def test_the_calls_need_the_roles_the_rules_name():
    for (rpc, what), (_call, role, _ok) in CALLS.items():
        rule = RULES[rpc]
        if rule is Need.ACCESSES:
            assert role == what, rpc
        elif rule is Need.KNOWN:
            assert role is None, rpc
        elif rule is Need.HELLO:
            assert role == "device", rpc
        else:
            assert role == rule, rpc


@pytest.mark.parametrize("who", IDENTITIES)
@pytest.mark.parametrize("rpc", list(CALLS), ids=[f"{r.rsplit('/', 1)[1]} {w}" for r, w in CALLS])
def test_each_rpc_serves_exactly_the_identities_with_its_role(guarded, rpc, who):
    channel, tokens = guarded
    call, role, served = CALLS[rpc]
    code, details = _code(call, channel, bearer(tokens.get(who)))
    known = who not in ("anonymous", "stranger")
    allowed = known and (role is None or who in (role, "everything"))
    if allowed:
        assert code in served, (code, details)
    elif not known:
        assert code == grpc.StatusCode.UNAUTHENTICATED, (code, details)
        assert "token" in details
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED, (code, details)
        assert f"the {role} role" in details and repr(who) in details
