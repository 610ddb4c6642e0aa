"""The simulator's side of an RTL device: the cocotb test that ``vvp`` runs. It connects to
the device's socket, starts the clock, resets the design and then serves the device's
commands (``mmiobus.rtl.protocol``) with the APB requester, reporting interrupt outputs as
they change. Configured by the ``MMIOBUS_RTL`` environment variable (JSON, see ``SimConfig``).

Simulated time: the simulator advances only while this test awaits a trigger. Waiting for the
next command blocks it, so the design's time stands still between bus accesses; each access
moves it on by its APB cycles (``mmiobus.rtl.apb``) and lets the design settle, so an
interrupt output the access changes is reported before the access is answered. With ``idle_cycles`` > 0, each ``idle_ms`` of wall time without
a command also runs that many PCLK cycles, so free-running logic (counters, timers) moves on
while the bus is quiet. Interrupt outputs are seen whenever time advances.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from dataclasses import dataclass
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Edge, FallingEdge, ReadOnly

from .apb import ApbError, ApbRequester, ApbSignals
from .protocol import Hello, SimOptions

RESET_CYCLES = 4


@dataclass
class SimConfig(SimOptions):
    """The device's ``SimOptions`` and ``socket``, the device's unix socket."""

    socket: str = ""

    @classmethod
    def from_env(cls) -> SimConfig:
        return cls(**json.loads(os.environ["MMIOBUS_RTL"]))


def _port(dut: Any, name: str, required: bool = True) -> Any:
    try:
        return getattr(dut, name)
    except AttributeError:
        if required:
            raise AttributeError(f"the design has no port {name!r}") from None
        return None


class Server:
    """Answers one device connection (see the module docstring)."""

    def __init__(self, dut: Any, cfg: SimConfig, sock: socket.socket) -> None:
        self.dut, self.cfg, self.sock = dut, cfg, sock
        p = cfg.prefix
        self.clk = _port(dut, cfg.clock)
        self.reset_n = _port(dut, cfg.reset, required=False)
        self.apb = ApbRequester(ApbSignals(
            clk=self.clk,
            psel=_port(dut, p + "psel"), penable=_port(dut, p + "penable"),
            pwrite=_port(dut, p + "pwrite"), paddr=_port(dut, p + "paddr"),
            pwdata=_port(dut, p + "pwdata"), prdata=_port(dut, p + "prdata"),
            pstrb=_port(dut, p + "pstrb", False), pready=_port(dut, p + "pready", False),
            pslverr=_port(dut, p + "pslverr", False),
        ))  # fmt: skip
        self.word = self.apb.width // 8
        self.irqs = {line: _port(dut, signal) for signal, line in cfg.irqs.items()}
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    async def reset(self) -> None:
        await FallingEdge(self.clk)
        if self.reset_n is not None:
            self.reset_n.value = 0
            await ClockCycles(self.clk, RESET_CYCLES)
            self.reset_n.value = 1
        await ClockCycles(self.clk, 1)

    async def watch(self, line: str, signal: Any) -> None:
        level = _level(signal)
        self.send(f"IRQ {line} {int(level)}")
        while True:
            await Edge(signal)
            now = _level(signal)
            if now != level:
                level = now
                self.send(f"IRQ {line} {int(level)}")

    def next_command(self) -> str | None:
        """The next command line; None when ``idle_ms`` passed without one (with an idle
        policy); blocks the simulator (time stands still) while it waits."""
        while b"\n" not in self.buffer:
            timeout = self.cfg.idle_ms / 1000 if self.cfg.idle_cycles else None
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    async def serve(self) -> None:
        hello = Hello(self.apb.width, self.apb.s.pstrb is not None, tuple(self.irqs))
        self.send(hello.line())
        while True:
            try:
                command = self.next_command()
            except (EOFError, OSError):
                return
            if command is None:
                await ClockCycles(self.clk, self.cfg.idle_cycles)
                continue
            try:
                answer = await self.execute(command.split())
            except (ApbError, ValueError) as e:
                answer = f"ERR {e}"
            # The design settles (nonblocking assignments, outputs): interrupt outputs the
            # access changed are reported before its answer.
            await ReadOnly()
            self.send(answer)

    async def execute(self, words: list[str]) -> str:
        op = words[0] if words else ""
        if op == "R":
            return f"OK {await self.read(int(words[1], 16), int(words[2])):#x}"
        if op == "W":
            await self.write(int(words[1], 16), int(words[2]), int(words[3], 16))
            return "OK"
        if op == "RESET":
            await self.reset()
            return "OK"
        if op == "TIME":
            return f"OK {get_sim_time('ns'):.0f}"
        if op == "BENCH":
            start = time.perf_counter()
            for _ in range(int(words[1])):
                await self.apb.read(0)
            return f"OK {time.perf_counter() - start:.6f}"
        raise ValueError(f"unknown command {' '.join(words)!r}")

    def _lane(self, offset: int, size: int) -> tuple[int, int]:
        shift = offset % self.word
        if size > self.word or shift + size > self.word:
            raise ValueError(f"{size} bytes at {offset:#x} cross a {self.word}-byte APB word")
        return offset - shift, 8 * shift

    async def read(self, offset: int, size: int) -> int:
        addr, shift = self._lane(offset, size)
        return (await self.apb.read(addr) >> shift) & ((1 << (8 * size)) - 1)

    async def write(self, offset: int, size: int, value: int) -> None:
        addr, shift = self._lane(offset, size)
        mask = ((1 << (8 * size)) - 1) << shift
        if self.apb.s.pstrb is not None:
            strobe = ((1 << size) - 1) << (shift // 8)
            await self.apb.write(addr, (value << shift) & mask, strobe)
        elif size == self.word:
            await self.apb.write(addr, value)
        else:  # no PSTRB: read the word, change the lanes, write it back
            old = await self.apb.read(addr)
            await self.apb.write(addr, (old & ~mask) | ((value << shift) & mask))


def _level(signal: Any) -> bool:
    try:
        return bool(int(signal.value))
    except ValueError:  # X or Z: not raised
        return False


@cocotb.test()
async def serve_the_bus(dut: Any) -> None:
    """Serve the device until it disconnects."""
    cfg = SimConfig.from_env()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(cfg.socket)
    try:
        server = Server(dut, cfg, sock)
    except Exception as e:  # a port the design lacks: said instead of HELLO
        sock.sendall(f"FAIL {e}\n".encode())
        return
    Clock(server.clk, cfg.period_ns, unit="ns").start()
    await server.reset()
    for line, signal in server.irqs.items():
        cocotb.start_soon(server.watch(line, signal))
    await server.serve()
