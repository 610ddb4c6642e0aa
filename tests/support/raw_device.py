"""The device protocol spoken from the test itself.

- ``RawDevice``: one ``Devices.Attach`` stream driven message by message, for devices that
  misbehave, stay silent or count messages.
- ``refusal``: how the bus ends a stream that opens with given messages.
- ``BusStub``: raw ``Bus`` RPCs with futures, for accesses that stay pending while the test plays
  the device.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import grpc
from mmiobus.v1 import bus_pb2, bus_pb2_grpc, devices_pb2, devices_pb2_grpc


class StreamEnded(Exception):
    """The bus ended the device's stream."""

    def __init__(self, code: grpc.StatusCode | None, details: str | None) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details or ""


_END = object()


class RawDevice:
    """One ``Devices.Attach`` stream driven message by message from the test."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self._out: queue.Queue[Any] = queue.Queue()
        self._in: queue.Queue[Any] = queue.Queue()
        self.call = devices_pb2_grpc.DevicesStub(self.channel).Attach(self._requests())
        self._ids = 0
        self.handles: dict[str, int] = {}
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _requests(self) -> Any:
        while (message := self._out.get()) is not None:
            yield message

    def _pump(self) -> None:
        try:
            for message in self.call:
                self._in.put(message)
        except grpc.RpcError:
            pass
        self._in.put(_END)

    def __enter__(self) -> RawDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._out.put(None)
        self.call.cancel()
        self.channel.close()

    # -- sending ------------------------------------------------------------------------------

    def send(self, message: devices_pb2.DeviceMessage) -> None:
        self._out.put(message)

    def hello(self, name: str, **fields: Any) -> devices_pb2.Welcome:
        """Say hello; returns the welcome (raises ``StreamEnded`` if refused)."""
        fields.setdefault("min_protocol", 1)
        fields.setdefault("max_protocol", 1)
        self.send(devices_pb2.DeviceMessage(hello=devices_pb2.Hello(name=name, **fields)))
        message = self.recv()
        assert message.WhichOneof("msg") == "welcome", message
        return message.welcome

    def region_request(self, **op: Any) -> devices_pb2.RegionReply:
        """Send a RegionRequest (claim=..., register=..., unmap=...); returns its reply."""
        self._ids += 1
        self.send(
            devices_pb2.DeviceMessage(region=devices_pb2.RegionRequest(request_id=self._ids, **op))
        )
        message = self.recv()
        assert message.WhichOneof("msg") == "region", message
        assert message.region.request_id == self._ids
        return message.region

    def claim(self, region: str) -> devices_pb2.RegionReply:
        reply = self.region_request(claim=devices_pb2.ClaimRegion(region=region))
        if reply.code == 0:
            self.handles[region] = reply.handle
        return reply

    def register(self, **fields: Any) -> devices_pb2.RegionReply:
        reply = self.region_request(register=devices_pb2.RegisterRegion(**fields))
        if reply.code == 0:
            self.handles[reply.region.id] = reply.handle
        return reply

    def unmap(self, handle: int) -> devices_pb2.RegionReply:
        return self.region_request(unmap=devices_pb2.UnmapRegion(handle=handle))

    def answer(self, *replies: devices_pb2.AccessReply) -> None:
        self.send(devices_pb2.DeviceMessage(replies=devices_pb2.AccessReplies(replies=replies)))

    # -- receiving ----------------------------------------------------------------------------

    def recv(self, timeout: float = 20.0) -> devices_pb2.BusMessage:
        """The next message from the bus (raises ``StreamEnded`` when the stream is over)."""
        message = self._in.get(timeout=timeout)
        if message is _END:
            self._in.put(_END)
            raise StreamEnded(self.call.code(), self.call.details())
        return message

    def accesses(self, count: int, timeout: float = 20.0) -> tuple[list[devices_pb2.Access], int]:
        """Wait for ``count`` access requests; returns them and how many messages they came in."""
        got: list[devices_pb2.Access] = []
        messages = 0
        deadline = time.monotonic() + timeout
        while len(got) < count:
            message = self.recv(max(0.01, deadline - time.monotonic()))
            assert message.WhichOneof("msg") == "accesses", message
            got.extend(message.accesses.accesses)
            messages += 1
        return got, messages

    def ended(self, timeout: float = 20.0) -> StreamEnded:
        """Wait for the bus to end the stream; returns its status."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.recv(max(0.01, deadline - time.monotonic()))
            except StreamEnded as e:
                return e


def refusal(address: str, *messages: devices_pb2.DeviceMessage) -> StreamEnded:
    """Open a stream, send ``messages``, and return how the bus ended it (a status with no
    code if the bus answered instead)."""
    with RawDevice(address) as dev:
        for m in messages:
            dev.send(m)
        try:
            answer = dev.recv()
        except StreamEnded as e:
            return e
        return StreamEnded(None, f"not refused; the bus answered {answer}")


# -- a client with futures ------------------------------------------------------------------------


class BusStub:
    """Raw ``Bus`` RPCs; ``*_async`` return gRPC futures (the access is pending meanwhile)."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = bus_pb2_grpc.BusStub(self.channel)
        self.devices = devices_pb2_grpc.DevicesStub(self.channel)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def read_async(self, addr: int, length: int) -> Any:
        return self.stub.Rw.future(bus_pb2.RwRequest(addr=addr, read=length), timeout=self.timeout)

    def write_async(self, addr: int, data: bytes) -> Any:
        return self.stub.Rw.future(bus_pb2.RwRequest(addr=addr, write=data), timeout=self.timeout)

    def read(self, addr: int, length: int) -> bus_pb2.RwResponse:
        return self.read_async(addr, length).result()

    def write(self, addr: int, data: bytes) -> bus_pb2.RwResponse:
        return self.write_async(addr, data).result()

    def batch_async(self, requests: list[bus_pb2.RwRequest]) -> Any:
        return self.stub.RwBatch.future(
            bus_pb2.RwBatchRequest(accesses=requests), timeout=self.timeout
        )

    def topology(self) -> bus_pb2.Topology:
        return self.stub.GetTopology(
            bus_pb2.GetTopologyRequest(flat_views=True), timeout=self.timeout
        )

    def region(self, region_id: str) -> bus_pb2.Region | None:
        return next((r for r in self.topology().regions if r.id == region_id), None)

    def mtree(self) -> str:
        return self.stub.Mtree(bus_pb2.MtreeRequest(), timeout=self.timeout).text

    def device(self, name: str) -> devices_pb2.DeviceInfo | None:
        reply = self.devices.ListDevices(devices_pb2.ListDevicesRequest(), timeout=self.timeout)
        return next((d for d in reply.devices if d.name == name), None)
