"""A malformed message from a peer is the peer's problem: it gets a status saying what was
wrong, and the server's log one warning line naming the peer — never an internal error or a
traceback, and never a flood when the peer keeps at it."""

from __future__ import annotations

import re

import grpc
import pytest
from mmiobus.server.peer_log import BURST, PeerWarnings
from mmiobus.v1 import devices_pb2
from support.raw_device import RawDevice
from support.servers import ServerFactory, ServerProcess
from support.wait import wait_for

GARBAGE = b"\x0a\xff\xff\xff\x0f"  # field 1, length-delimited, a length far past the end


@pytest.fixture
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server()


def lines(server: ServerProcess, event: str) -> list[str]:
    return [line for line in server.log().splitlines() if event in line]


def send_garbage(address: str, times: int) -> None:
    with grpc.insecure_channel(address) as channel:
        rw = channel.unary_unary(
            "/mmiobus.v1.Bus/Rw", request_serializer=None, response_deserializer=None
        )
        for _ in range(times):
            with pytest.raises(grpc.RpcError) as info:
                rw(GARBAGE, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_message_that_does_not_parse_is_one_warning_naming_the_peer(server: ServerProcess):
    send_garbage(server.tcp, 1)
    [line] = wait_for(lambda: lines(server, "malformed message"))
    assert "warning" in line and re.search(r"peer=ipv4:127\.0\.0\.1:\d+", line), line
    assert "does not parse" in line
    assert "Traceback" not in server.log() and "internal error" not in server.log()


def test_a_peer_that_keeps_sending_malformed_messages_does_not_flood_the_log(
    server: ServerProcess,
):
    send_garbage(server.tcp, 50)
    wait_for(lambda: lines(server, "malformed message"))
    assert len(lines(server, "malformed message")) == BURST


def test_a_device_breaking_the_protocol_is_one_warning_naming_its_peer(server: ServerProcess):
    with RawDevice(server.tcp) as dev:
        dev.hello("liar")
        reply = devices_pb2.AccessReply(id=12345, value=1)  # no such access is pending
        dev.answer(reply)
        ended = dev.ended()
    assert ended.code == grpc.StatusCode.INVALID_ARGUMENT
    [line] = wait_for(lambda: lines(server, "device stream closed"))
    assert "device=liar" in line and "peer=ipv4:127.0.0.1:" in line and "12345" in line
    assert "Traceback" not in server.log() and "internal error" not in server.log()


def test_warnings_come_back_after_a_quiet_spell_saying_how_many_were_left_out():
    now = [0.0]
    warnings = PeerWarnings(clock=lambda: now[0])
    logged = [warnings.warn("malformed message", "peer-a") for _ in range(BURST + 3)]
    assert logged == [True] * BURST + [False] * 3
    assert warnings.warn("malformed message", "peer-b")  # each peer has its own allowance
    now[0] = 60.0
    assert warnings.warn("malformed message", "peer-a")
