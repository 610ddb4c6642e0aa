"""What the fuzz tests (tests/fuzz) share: a machine with a RAM canary no fuzzed message can
name, hints that steer fuzzed fields towards what that machine has, and the checks every fuzz
test ends with (the server is alive and healthy, the canary intact, its log free of internal
errors and tracebacks).

Fuzzing is bounded: ``EXAMPLES`` examples per RPC (``MMIOBUS_FUZZ_EXAMPLES``, 40 by default:
a few seconds each). For a deeper run: ``MMIOBUS_FUZZ_EXAMPLES=2000 python3 dev.py test
tests/fuzz``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import strategies as st
from mmiobus.v1 import bus_pb2, bus_pb2_grpc

from .servers import ServerProcess

EXAMPLES = int(os.environ.get("MMIOBUS_FUZZ_EXAMPLES", "40"))

CANARY_SPACE = "fuzz-canary-7c1e"
CANARY = bytes(range(256)) * 16  # 4 KiB

FUZZ_MACHINE = f"""\
endianness: little
address_spaces:
  - {{name: memory, root: system}}
  - {{id: {CANARY_SPACE}, name: canary, root: fuzz-canary-root-7c1e}}
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {{name: ram, kind: ram, addr: 0x0, size: 16 MiB}}
      - name: uart0
        kind: mmio
        addr: 0x10000000
        size: 0x8
        valid: {{min: 1, max: 4}}
        impl: {{min: 1, max: 1}}
        device: uart0
        absent: unassigned
      - {{name: dev0, kind: mmio, addr: 0x10001000, size: 0x100, device: dev0, absent: error}}
      - {{name: boot.rom, kind: rom, addr: 0xfffc0000, size: 64 KiB}}
  - name: fuzz-canary-root-7c1e
    kind: container
    size: 0x10000
    subregions:
      - {{id: fuzz-canary-ram-7c1e, name: canary, kind: ram, size: 0x1000}}
"""

IDS = ["system", "ram", "uart0", "dev0", "boot.rom", "memory", "", "dev0.0", "fuzzed"]
ADDRS = [0x0, 0x1000, 0xFFF_FFFC, 0x1000_0000, 0x1000_1000, 0x1000_10FE, 0xFFFC_0000, 2**64 - 1]

# Fuzzed fields by name and kind (see support.protobuf_strategies): ids the machine has,
# addresses where something is, and lengths the limits allow.
_NAMED = (
    "id", "parent", "child", "target", "root", "region", "address_space", "name", "container",
    "address_spaces", "regions", "lines",
)  # fmt: skip
HINTS = {
    **{f"{name}:str": st.sampled_from(IDS) for name in _NAMED},
    "addr:int": st.sampled_from(ADDRS),
    "read:int": st.one_of(st.integers(0, 64), st.sampled_from([4096, 1 << 20])),
    "size:int": st.one_of(st.integers(0, 0x100), st.sampled_from([0x1000, 1 << 20])),
    "timeout_ms:int": st.integers(0, 200),
}


@dataclass
class FuzzTarget:
    """The fuzzed server and a channel to it."""

    server: ServerProcess
    channel: grpc.Channel

    @property
    def address(self) -> str:
        return self.server.tcp

    def check_survived(self) -> None:
        """The server runs, answers health checks, kept the canary, and logged no internal
        error or traceback."""
        assert self.server.proc.poll() is None, f"the server died:\n{self.server.log()}"
        health = health_pb2_grpc.HealthStub(self.channel)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=30).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        bus = bus_pb2_grpc.BusStub(self.channel)
        reply = bus.Rw(
            bus_pb2.RwRequest(address_space=CANARY_SPACE, addr=0, read=len(CANARY)), timeout=30
        )
        assert (reply.result, reply.data) == (0, CANARY), "the RAM canary changed"
        log = self.server.log()
        for bad in ("Traceback", "internal error"):
            assert bad not in log, f"the server logged {bad!r}:\n{log[-6000:]}"


def acceptable(code: grpc.StatusCode | None) -> bool:
    """A status a fuzzed request may end with: anything but a server bug."""
    return code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
