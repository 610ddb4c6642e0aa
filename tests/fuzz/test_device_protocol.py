"""The device protocol (``Devices.Attach``) fuzzed against a real server: streams that open with
anything, and sessions that say a proper hello and then send random messages — replies to
accesses that are (or are not) pending, DMA, interrupt lines, region requests — or bytes that
are no message. Every stream must end with a proper status (never UNKNOWN or INTERNAL), one
broken session must not disturb the bus, and the server must stay healthy with its canary
intact and no internal error in its log."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
from hypothesis import given, settings
from hypothesis import strategies as st
from mmiobus.v1 import bus_pb2, bus_pb2_grpc, devices_pb2
from support.fuzzing import EXAMPLES, HINTS, FuzzTarget, acceptable
from support.protobuf_strategies import messages, raw_bytes

ATTACH = "/mmiobus.v1.Devices/Attach"
# Replies and DMA ids close to those the bus hands out, so that some are for pending accesses.
DEVICE_HINTS = {**HINTS, "id:int": st.integers(0, 12), "handle:int": st.integers(0, 12)}
MESSAGE = messages(devices_pb2.DeviceMessage.DESCRIPTOR, DEVICE_HINTS)
PAYLOAD = st.one_of(MESSAGE.map(lambda m: m.SerializeToString()), raw_bytes())
_names = (f"fuzzdev{n}" for n in itertools.count())


def hello(name: str) -> bytes:
    message = devices_pb2.DeviceMessage(
        hello=devices_pb2.Hello(name=name, min_protocol=1, max_protocol=1)
    )
    return message.SerializeToString()


def claim(region: str) -> bytes:
    request = devices_pb2.RegionRequest(request_id=1, claim=devices_pb2.ClaimRegion(region=region))
    return devices_pb2.DeviceMessage(region=request).SerializeToString()


def attach(target: FuzzTarget, payloads: list[bytes], linger: float = 0.1) -> None:
    """Open a stream, send ``payloads``, wait ``linger`` seconds for what the bus answers,
    half-close, and read to the end: the stream must end with a proper status."""

    def requests() -> Iterator[bytes]:
        yield from payloads
        time.sleep(linger)

    call: Any = target.channel.stream_stream(
        ATTACH, request_serializer=None, response_deserializer=None
    )(requests(), timeout=10)
    try:
        for _ in call:
            pass
    except grpc.RpcError as e:
        assert acceptable(e.code()), f"Attach ended with {e.code()}: {e.details()}"


def test_streams_that_open_with_anything_end_with_a_proper_status(fuzz_target: FuzzTarget):
    @settings(max_examples=EXAMPLES)
    @given(st.lists(PAYLOAD, min_size=1, max_size=4))
    def run(payloads: list[bytes]) -> None:
        attach(fuzz_target, payloads, linger=0)

    run()
    fuzz_target.check_survived()


def test_sessions_that_send_anything_after_hello_end_with_a_proper_status(
    fuzz_target: FuzzTarget,
):
    @settings(max_examples=EXAMPLES)
    @given(st.lists(PAYLOAD, min_size=1, max_size=6))
    def run(payloads: list[bytes]) -> None:
        attach(fuzz_target, [hello(next(_names)), *payloads])

    run()
    fuzz_target.check_survived()


def test_a_device_answering_nonsense_to_pending_accesses_fails_only_them(
    fuzz_target: FuzzTarget,
):
    """A device that claims a region and answers the accesses a client makes meanwhile with
    random messages: the client gets an answer (a bus fault at worst) within the deadline."""
    bus = bus_pb2_grpc.BusStub(fuzz_target.channel)

    @settings(max_examples=EXAMPLES)
    @given(st.lists(PAYLOAD, min_size=1, max_size=6))
    def run(payloads: list[bytes]) -> None:
        answers: list[Any] = []

        def client() -> None:
            time.sleep(0.02)  # once the claim went through (or did not)
            request = bus_pb2.RwRequest(addr=0x1000_1000, read=4)
            answers.append(bus.Rw(request, timeout=10))

        worker = threading.Thread(target=client)
        worker.start()
        attach(fuzz_target, [hello(next(_names)), claim("dev0"), *payloads], linger=0.1)
        worker.join(15)
        assert answers, "the client's access was never answered"

    run()
    fuzz_target.check_survived()
