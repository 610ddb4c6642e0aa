"""Reading and writing under a policy: a read-only identity reads but its writes change
nothing, wherever they hide (a batch, a stream); what callers without credentials may do is the
policy's ``anonymous``; a token goes in ``authorization: Bearer``, or a device's hello."""

from __future__ import annotations

import grpc
import pytest
from mmiobus.client import Bus, PermissionDenied
from mmiobus.credentials import Credentials
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.auth import RawAttach, bearer, write_auth_file, write_token

ADDR = 0x3000


@pytest.fixture(scope="module")
def bus(machine_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth")
    reader, reader_file = write_token(folder, "reader")
    owner, owner_file = write_token(folder, "owner")
    device, device_file = write_token(folder, "device")
    auth = write_auth_file(
        folder,
        [
            {"name": "reader", "token_file": reader_file.name, "roles": ["read"]},
            {"name": "owner", "token_file": owner_file.name, "roles": ["all"]},
            {"name": "device", "token_file": device_file.name, "roles": ["device"]},
        ],
        anonymous=["read"],
    )
    server = machine_server(None, "--auth", str(auth))
    return server, {"reader": reader, "owner": owner, "device": device}


def _stub(channel):
    return bus_pb2_grpc.BusStub(channel)


def test_a_read_only_identity_reads_and_its_write_changes_nothing(bus):
    server, tokens = bus
    with Bus(server.tcp, credentials=Credentials(tokens["owner"])) as owner:
        owner.write(ADDR, b"\x11\x22\x33\x44")
    with Bus(server.tcp, credentials=Credentials(tokens["reader"])) as reader:
        assert reader.read(ADDR, 4) == b"\x11\x22\x33\x44"
        with pytest.raises(PermissionDenied, match="write role"):
            reader.write(ADDR, b"\xff\xff\xff\xff")
        assert reader.read(ADDR, 4) == b"\x11\x22\x33\x44"


def test_a_batch_with_one_write_is_refused_whole(bus):
    server, tokens = bus
    batch = pb.RwBatchRequest(
        accesses=[pb.RwRequest(addr=ADDR, read=4), pb.RwRequest(addr=ADDR, write=b"\x00")]
    )
    with grpc.insecure_channel(server.tcp) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            _stub(channel).RwBatch(batch, metadata=bearer(tokens["reader"]))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "writing memory (Bus.RwBatch) needs the write role" in refused.value.details()
        read = _stub(channel).Rw(pb.RwRequest(addr=ADDR, read=1), metadata=bearer(tokens["reader"]))
        assert read.data != b"\x00"


def test_a_stream_answers_reads_then_ends_at_the_first_write(bus):
    server, tokens = bus
    messages = [
        pb.RwStreamRequest(accesses=[pb.RwRequest(id=1, addr=ADDR, read=4)]),
        pb.RwStreamRequest(accesses=[pb.RwRequest(id=2, addr=ADDR, write=b"\x00")]),
    ]
    replies = []
    with grpc.insecure_channel(server.tcp) as channel, pytest.raises(grpc.RpcError) as refused:
        for reply in _stub(channel).RwStream(iter(messages), metadata=bearer(tokens["reader"])):
            replies.append(reply)
    assert [r.id for reply in replies for r in reply.results] == [1]
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_callers_without_credentials_have_the_anonymous_roles(bus):
    server, _ = bus
    with Bus(server.tcp, credentials=Credentials()) as anyone:
        anyone.read(ADDR, 4)
        with pytest.raises(PermissionDenied, match="without credentials") as refused:
            anyone.write(ADDR, b"\x00")
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer  "])
def test_an_authorization_header_that_is_not_bearer_is_unauthenticated(bus, header):
    server, _ = bus
    with grpc.insecure_channel(server.tcp) as channel, pytest.raises(grpc.RpcError) as refused:
        _stub(channel).GetInfo(pb.GetInfoRequest(), metadata=(("authorization", header),))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer TOKEN" in refused.value.details()


def test_the_client_takes_its_token_from_the_environment(bus, monkeypatch, tmp_path):
    server, tokens = bus
    path = tmp_path / "token"
    path.write_text(tokens["owner"] + "\n")
    monkeypatch.setenv("MMIOBUS_TOKEN_FILE", str(path))
    with Bus(server.tcp) as owner:
        owner.write(ADDR + 8, b"\x01")
    monkeypatch.delenv("MMIOBUS_TOKEN_FILE")
    monkeypatch.setenv("MMIOBUS_TOKEN", tokens["reader"])
    with Bus(server.tcp) as reader, pytest.raises(PermissionDenied, match="'reader'"):
        reader.write(ADDR + 8, b"\x02")


def test_a_device_may_present_its_token_in_hello(bus):
    """A device whose call carries no token may say it in hello (as with --device-token)."""
    server, tokens = bus
    with grpc.insecure_channel(server.tcp) as channel:
        device = RawAttach(channel)
        try:
            assert device.hello("hello-token", token=tokens["device"]).HasField("welcome")
        finally:
            device.close()
        stranger = RawAttach(channel)
        try:
            with pytest.raises(grpc.RpcError) as refused:
                stranger.hello("hello-stranger", token="not-a-token-here")
        finally:
            stranger.close()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_reader_is_not_a_device(bus):
    server, tokens = bus
    with grpc.insecure_channel(server.tcp) as channel:
        device = RawAttach(channel, bearer(tokens["reader"]))
        try:
            with pytest.raises(grpc.RpcError) as refused:
                device.hello("reader-device")
        finally:
            device.close()
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "the device role" in refused.value.details()


def test_peers_addresses_are_shown_to_admins_only(bus):
    server, tokens = bus
    with grpc.insecure_channel(server.tcp) as channel:
        device = RawAttach(channel, bearer(tokens["device"]))
        try:
            device.hello("peer-shown")
            with Bus(server.tcp, credentials=Credentials(tokens["reader"])) as reader:
                [seen] = [d for d in reader.devices() if d.name == "peer-shown"]
                assert seen.peer == ""
            with Bus(server.tcp, credentials=Credentials(tokens["owner"])) as owner:
                [seen] = [d for d in owner.devices() if d.name == "peer-shown"]
                assert seen.peer.startswith("ipv4:127.0.0.1:")
        finally:
            device.close()


def test_identities_that_take_turns_keep_their_own_roles(bus):
    """The bus remembers recently accepted headers; each still names its own identity."""
    server, tokens = bus
    with (
        Bus(server.tcp, credentials=Credentials(tokens["reader"])) as reader,
        Bus(server.tcp, credentials=Credentials(tokens["owner"])) as owner,
    ):
        for value in range(3):
            owner.write(ADDR + 16, bytes([value]))
            with pytest.raises(PermissionDenied, match="'reader'"):
                reader.write(ADDR + 16, b"\xff")
            assert reader.read(ADDR + 16, 1) == bytes([value])
