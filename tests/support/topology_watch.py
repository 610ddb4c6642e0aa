"""A raw ``WatchTopology`` stream read in a background thread."""

from __future__ import annotations

import threading
import time

import grpc
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc

from support.servers import ServerProcess
from support.wait import TIMEOUT


class Watch:
    """A raw ``WatchTopology`` stream read in a background thread."""

    def __init__(self, server: ServerProcess, address_space: str = ""):
        self.channel = grpc.insecure_channel(server.tcp)
        self.call = bus_pb2_grpc.BusStub(self.channel).WatchTopology(
            pb.WatchTopologyRequest(address_space=address_space)
        )
        self.messages: list[pb.TopologyChange] = []
        self.error: grpc.RpcError | None = None
        self.ended = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                with self._cond:
                    self.messages.append(message)
                    self._cond.notify_all()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = e
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def wait(self, count: int, timeout: float = TIMEOUT) -> list[pb.TopologyChange]:
        """Wait until ``count`` messages have come; returns all of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left_ = deadline - time.monotonic()
                if self.ended or left_ <= 0:
                    raise AssertionError(
                        f"expected {count} topology messages, got {len(self.messages)} "
                        f"(ended={self.ended}, error={self.error})"
                    )
                self._cond.wait(min(left_, 0.5))
            return list(self.messages)

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(TIMEOUT)
        self.channel.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
