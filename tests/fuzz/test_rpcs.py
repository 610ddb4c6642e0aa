"""Every RPC of ``Bus`` and ``Devices`` (``Attach`` has its own module) fuzzed against a real
server: messages built field by field with random values, and raw bytes that are not a message
at all. No request may end with UNKNOWN or INTERNAL (a bug), and afterwards the server must be
alive, healthy, with its RAM canary intact and no internal error in its log (``support.fuzzing``)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st
from mmiobus.v1 import bus_pb2, devices_pb2
from support.fuzzing import EXAMPLES, HINTS, FuzzTarget, acceptable
from support.protobuf_strategies import messages, raw_bytes

SERVICES = [
    bus_pb2.DESCRIPTOR.services_by_name["Bus"],
    devices_pb2.DESCRIPTOR.services_by_name["Devices"],
]
METHODS = [m for s in SERVICES for m in s.methods if m.name != "Attach"]
STREAM_SECONDS = 0.3  # how long a streaming reply is read before the call is cancelled


def call(target: FuzzTarget, method: MethodDescriptor, payloads: list[bytes]) -> None:
    """Make the call with serialized ``payloads`` (one for a unary request) on a generic
    channel method; assert it did not end with a status that means a server bug."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    ch = target.channel
    plain: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
    try:
        if method.client_streaming:
            replies = ch.stream_stream(path, **plain)(iter(payloads), timeout=5)
            for _ in replies:
                pass
        elif method.server_streaming:
            replies = ch.unary_stream(path, **plain)(payloads[0], timeout=STREAM_SECONDS)
            for _ in replies:
                pass
        else:
            ch.unary_unary(path, **plain)(payloads[0], timeout=5)
    except grpc.RpcError as e:
        code = e.code()  # type: ignore[attr-defined]
        if method.server_streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return  # a stream that goes on: cut by us
        assert acceptable(code), f"{path} answered {code}: {e.details()}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_fuzzed_messages_never_break_the_server(fuzz_target: FuzzTarget, method: MethodDescriptor):
    """Each field set (or not) at random: every reply is a proper status or an answer."""
    requests = st.lists(messages(method.input_type, HINTS), min_size=1, max_size=3)

    @settings(max_examples=EXAMPLES)
    @given(requests)
    def run(requests: list[Any]) -> None:
        call(fuzz_target, method, [r.SerializeToString() for r in requests])

    run()
    fuzz_target.check_survived()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_raw_bytes_never_break_the_server(fuzz_target: FuzzTarget, method: MethodDescriptor):
    """Bytes that do not parse are INVALID_ARGUMENT (or parse as something harmless)."""

    @settings(max_examples=EXAMPLES)
    @given(st.lists(raw_bytes(), min_size=1, max_size=3))
    def run(payloads: list[bytes]) -> None:
        call(fuzz_target, method, payloads)

    run()
    fuzz_target.check_survived()
