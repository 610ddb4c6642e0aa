"""An RTL design as a bus device: ``serve`` compiles the design, starts the simulator (which
connects back and says what the design has), and serves the design's window as one device
session until stopped or until the simulator goes away.

An access at offset O of the window is an APB transfer at address TARGET + O (TARGET is 0
unless the window says otherwise), of the access's size within one APB word: byte lanes by
PSTRB, or read-modify-write for a design without it. PSLVERR answers MEMTX_ERROR. An
interrupt output that changes sets its bus line (``DEVICE.LINE``). A bus reset of the device
asserts PRESETn. See ``mmiobus.rtl.simulation`` for how simulated time advances.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from mmiobus.credentials import Credentials
from mmiobus.devices import Device
from mmiobus.memory.access import MemTxResult
from mmiobus.peers.child import ChildProcess, PeerStartError, listening_socket
from mmiobus.peers.lines import ChannelClosed, LineChannel
from mmiobus.peers.session import PeerRunner, region_layout, serve_while_alive
from mmiobus.peers.windows import Window, resolve

from .build import check_tools, compile_design, simulator_command
from .protocol import Hello, SimOptions, is_event, parse_event

log = structlog.get_logger("mmiobus.rtl")

START_TIMEOUT = 60.0


class SimulatorError(Exception):
    """The simulator could not start or the design cannot be served; says why in one line."""


class Simulator:
    """A running simulator and its command channel (``channel``); ``hello`` says what the
    design has."""

    def __init__(self, child: ChildProcess, channel: LineChannel, hello: Hello, workdir: Any):
        self.child = child
        self.channel = channel
        self.hello = hello
        self._workdir = workdir
        channel.start()

    @classmethod
    async def start(cls, sources: list[str], top: str, sim: SimOptions) -> Simulator:
        """Compile and start; ``SimulatorError`` if the design does not build or the
        simulator stops (or says nothing) before it connects."""
        check_tools()
        tmp = tempfile.TemporaryDirectory(prefix="mmiobus-rtl-")
        workdir = Path(tmp.name)
        try:
            image = await asyncio.to_thread(compile_design, sources, top, workdir)
            listener = listening_socket(str(workdir / "sim.sock"))
            config = json.dumps({"socket": str(workdir / "sim.sock"), **asdict(sim)})
            argv, env = simulator_command(image, top, config)
            child = await ChildProcess.start(
                argv, "vvp", env=env, stdout=asyncio.subprocess.DEVNULL
            )
            try:
                (conn,) = await child.accept([listener], START_TIMEOUT)
                first, rest = await asyncio.wait_for(_first_line(conn), START_TIMEOUT)
                if first.startswith("FAIL "):
                    await child.stop()
                    raise SimulatorError(f"{top}: {first[5:].strip()}")
                hello = Hello.parse(first.strip())
            except PeerStartError as e:
                raise SimulatorError(f"the simulator stopped: {e}") from None
            except (ValueError, TimeoutError):
                await child.stop()
                raise SimulatorError(f"the simulator did not start: {child.last_words()}") from None
            finally:
                listener.close()
        except BaseException:
            tmp.cleanup()
            raise
        return cls(child, LineChannel(conn, is_event, initial=rest), hello, tmp)

    async def ended(self) -> str:
        await self.channel.wait_closed()
        await self.child.wait()
        return self.child.last_words()

    def call(self, command: str) -> str:
        """A command's answer line (blocking: the simulator answers in microseconds)."""
        return self.channel.call(command)

    async def stop(self) -> None:
        self.channel.close("the simulator was stopped")
        await self.child.stop()
        self._workdir.cleanup()


async def _first_line(conn: socket.socket) -> tuple[str, bytes]:
    """The first line the simulator sends, and what came after it."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\n" not in data:
        chunk = await loop.sock_recv(conn, 4096)
        if not chunk:
            return data.decode(errors="replace"), b""
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line.decode(errors="replace"), rest


class RtlDevice(Device):
    """The device the design is to the bus (see the module docstring)."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__()
        word = sim.hello.width // 8
        self.valid = self.impl = (1, word)
        self.channel = sim.channel
        self.window_of: dict[str, Window] = {}

    def _addr(self, offset: int) -> int:
        region = self.region
        assert region is not None
        return (self.window_of[region.id].target or 0) + offset

    def read(self, offset: int, size: int) -> Any:
        return self._answer(f"R {self._addr(offset):#x} {size}")

    def write(self, offset: int, size: int, value: int) -> Any:
        command = f"W {self._addr(offset):#x} {size} {value:#x}"
        region = self.region
        if region is not None and region.posted_writes:
            try:
                self.channel.post(command)
            except ChannelClosed:
                return MemTxResult.ERROR
            return None
        return self._answer(command)

    def reset(self) -> None:
        """PRESETn; the interrupt lines follow the design's outputs."""
        self._answer("RESET")

    def _answer(self, command: str) -> Any:
        """A read's value, a write's None, or MEMTX_ERROR (PSLVERR, or the simulator gone)."""
        try:
            line = self.channel.call(command)
        except ChannelClosed:
            return 0, MemTxResult.ERROR
        words = line.split()
        if words[:1] != ["OK"]:
            log.warning("the design answered with an error", answer=line)
            return 0, MemTxResult.ERROR
        return int(words[1], 16) if len(words) > 1 else None


@dataclass
class RtlDeviceOptions:
    """What ``serve`` runs: the bus, the session's name, the window (one), the design."""

    server: str
    name: str
    window: Window
    sources: list[str]
    top: str
    sim: SimOptions = field(default_factory=SimOptions)
    token: str = ""
    credentials: Credentials | None = None  # default: the environment's (mmiobus.credentials)
    reconnect: bool = True
    on_ready: Callable[[PeerRunner, list[Any]], None] | None = None


async def serve(opts: RtlDeviceOptions) -> None:
    """Serve until cancelled (the simulator is stopped) or until the simulator goes away
    (``PeerExited``). Checks happen before the session attaches."""
    window = opts.window if opts.window.target is not None else replace(opts.window, target=0)
    if window.claimed:
        (window,) = resolve(
            [window], await region_layout(opts.server, opts.credentials), "the design"
        )
    sim = await Simulator.start(opts.sources, opts.top, opts.sim)
    log.info("simulator started", pid=sim.child.proc.pid, top=opts.top, width=sim.hello.width,
             strobe=sim.hello.strobe, irqs=list(sim.hello.irqs))  # fmt: skip
    try:
        device = RtlDevice(sim)

        def on_event(line: str) -> None:
            name, level = parse_event(line)
            device.irq(name).set(level)

        sim.channel.on_event = on_event
        runner = PeerRunner(device, opts.server, name=opts.name, windows=[window],
                            token=opts.token, credentials=opts.credentials, reconnect=opts.reconnect, on_ready=opts.on_ready)  # fmt: skip
        device.window_of = runner.window_of
        await serve_while_alive(runner, sim.ended(), "the simulator")
    finally:
        await sim.stop()
