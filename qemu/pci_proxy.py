"""A QEMU PC guest as an initiator of the bus: QEMU's ``x-pci-proxy-dev`` presents a PCI
function whose configuration space is served here and whose BAR accesses are forwarded to
bus windows, with this program's device session as their initiator (traced under its name,
carried out in order like any device's DMA).

Threads: the asyncio loop runs the device session; one thread answers the proxy's socket,
blocking on the bus for each BAR read (the guest's vCPU waits for it anyway). BAR writes are
answered at once and carried out in order before any later access. A BAR access the bus
faults reads as all ones (what a PCI read that nobody claims returns) and is logged.

Limits (QEMU 7.2): PCI functions only, on x86_64 (``qemu-system-x86_64`` is the only Debian
QEMU with the proxy); INTx needs KVM's irqfds, so the function has no interrupt under TCG;
the guest's RAM stays in QEMU (the bus cannot reach it); the protocol is QEMU-private.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from mmiobus.credentials import Credentials
from mmiobus.devices import Device
from mmiobus.devices.session import RemoteHost
from mmiobus.peers.child import ChildProcess
from mmiobus.peers.session import PeerRunner
from mmiobus.v1 import devices_pb2 as pb

from .mpqemu import Cmd, Link, Message, ProtocolError
from .pci_config import ConfigSpace

log = structlog.get_logger("mmiobus.qemu.pci")

READ_TIMEOUT = 30.0  # a bus read the guest waits for longer than this reads as all ones


class GuestExited(Exception):
    """QEMU exited with a failure; carries its last words."""


class DmaBridge:
    """Blocking bus accesses from the proxy's thread, as DMA on the session's loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host: RemoteHost | None = None

    def attach(self, loop: asyncio.AbstractEventLoop, host: RemoteHost | None) -> None:
        self._loop, self._host = loop, host

    def read(self, addr: int, size: int) -> int | None:
        """The value at ``addr``, or None when the bus faults or is away."""
        loop, host = self._loop, self._host
        if loop is None or host is None:
            return None
        done: concurrent.futures.Future[pb.DmaReply] = concurrent.futures.Future()
        req = pb.DmaRequest(addr=addr, read=size)
        loop.call_soon_threadsafe(host.send_dma, req, done.set_result)
        try:
            reply = done.result(READ_TIMEOUT)
        except concurrent.futures.TimeoutError:
            return None
        return None if reply.result else int.from_bytes(reply.data, "little")

    def write(self, addr: int, size: int, value: int) -> bool:
        """Send a write without waiting for it (False when the bus is away)."""
        loop, host = self._loop, self._host
        if loop is None or host is None:
            return False
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        req = pb.DmaRequest(addr=addr, write=data)
        loop.call_soon_threadsafe(host.send_dma, req, _log_failed_write)
        return True


def _log_failed_write(reply: pb.DmaReply) -> None:
    if reply.result:
        log.warning("a guest write to the bus failed", result=reply.result)


class _Initiator(Device):
    """The session's device: it serves no region; it hands its host to the bridge."""

    def __init__(self, bridge: DmaBridge) -> None:
        super().__init__()
        self.bridge = bridge

    def start(self) -> None:
        assert isinstance(self._host, RemoteHost)
        self.bridge.attach(asyncio.get_running_loop(), self._host)

    def stop(self) -> None:
        self.bridge.attach(asyncio.get_running_loop(), None)


class ProxyServer:
    """Answers one proxy's socket (``serve``, in a thread) from ``config`` and the bus."""

    def __init__(self, link: Link, config: ConfigSpace, bridge: DmaBridge) -> None:
        self.link = link
        self.config = config
        self.bridge = bridge
        self.faults = 0

    def serve(self) -> None:
        """Until QEMU closes the socket."""
        while True:
            try:
                msg = self.link.receive()
            except (EOFError, OSError):
                return
            try:
                self.handle(msg)
            except ProtocolError as e:
                log.error("QEMU's proxy sent what this side cannot read", error=str(e))
                self.link.sock.close()
                return
            finally:
                for fd in msg.fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def handle(self, msg: Message) -> None:
        if msg.cmd == Cmd.PCI_CFGREAD:
            addr, _value, length = msg.config()
            self.link.reply(self.config.read(addr, length))
        elif msg.cmd == Cmd.PCI_CFGWRITE:
            addr, value, length = msg.config()
            self.config.write(addr, length, value)
            self.link.reply(0)
        elif msg.cmd == Cmd.BAR_READ:
            addr, _value, size, memory = msg.bar()
            self.link.reply(self._bar_read(addr, size, memory))
        elif msg.cmd == Cmd.BAR_WRITE:
            addr, value, size, memory = msg.bar()
            self._bar_write(addr, size, value, memory)
            self.link.reply(0)
        elif msg.cmd == Cmd.DEVICE_RESET:
            self.config.reset()
            self.link.reply(0)
        elif msg.cmd not in (Cmd.SYNC_SYSMEM, Cmd.SET_IRQFD):  # RAM stays in QEMU; no INTx
            raise ProtocolError(f"unknown command {msg.cmd}")

    def _target(self, addr: int, size: int, memory: bool) -> int | None:
        hit = self.config.decode(addr, memory)
        if hit is None:
            return None
        bar, offset = hit
        return bar.bus_addr + offset if offset + size <= bar.size else None

    def _bar_read(self, addr: int, size: int, memory: bool) -> int:
        target = self._target(addr, size, memory)
        value = None if target is None else self.bridge.read(target, size)
        if value is None:
            self._fault("read", addr, size)
            return (1 << (8 * size)) - 1
        return value

    def _bar_write(self, addr: int, size: int, value: int, memory: bool) -> None:
        target = self._target(addr, size, memory)
        if target is None or not self.bridge.write(target, size, value):
            self._fault("write", addr, size)

    def _fault(self, what: str, addr: int, size: int) -> None:
        self.faults += 1
        log.warning("a guest BAR access went nowhere", access=what, addr=hex(addr), size=size)


@dataclass
class ProxyOptions:
    """The bus, the session's name, the function, and the QEMU command line (the program
    first); ``pci_addr`` is the function's slot (QEMU's ``addr=``), if given."""

    server: str
    name: str
    config: ConfigSpace
    qemu_argv: list[str]
    pci_addr: str | None = None
    token: str = ""
    credentials: Credentials | None = None  # default: the environment's (mmiobus.credentials)
    reconnect: bool = True
    on_ready: Callable[[Any, list[Any]], None] | None = None
    extra_device_props: list[str] = field(default_factory=list)


async def serve(opts: ProxyOptions) -> int:
    """Attach, start QEMU with the proxy device, answer it until QEMU exits; QEMU's exit
    status (``GuestExited`` if it failed). Cancelling stops QEMU."""
    bridge = DmaBridge()
    attached = asyncio.Event()

    def ready(runner: Any, regions: list[Any]) -> None:
        attached.set()
        if opts.on_ready is not None:
            opts.on_ready(runner, regions)

    runner = PeerRunner(_Initiator(bridge), opts.server, name=opts.name, windows=[],
                        token=opts.token, credentials=opts.credentials, reconnect=opts.reconnect, on_ready=ready)  # fmt: skip
    session = asyncio.ensure_future(runner.run())
    try:
        waiting = asyncio.ensure_future(attached.wait())
        await asyncio.wait({session, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if session.done():
            waiting.cancel()
            session.result()  # a refusal, or a bus out of reach without reconnecting
            return 0
        return await _run_guest(opts, bridge)
    finally:
        session.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await session


async def _run_guest(opts: ProxyOptions, bridge: DmaBridge) -> int:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    prop = f"x-pci-proxy-dev,fd={theirs.fileno()},id={opts.name}"
    if opts.pci_addr:
        prop += f",addr={opts.pci_addr}"
    prop = ",".join([prop, *opts.extra_device_props])
    argv = [*opts.qemu_argv, "-device", prop]
    try:
        child = await ChildProcess.start(
            argv, os.path.basename(argv[0]), pass_fds=[theirs.fileno()]
        )
    finally:
        theirs.close()
    log.info("QEMU started", pid=child.proc.pid, device=prop)
    server = ProxyServer(Link(ours), opts.config, bridge)
    thread = threading.Thread(target=server.serve, name="mpqemu", daemon=True)
    thread.start()
    try:
        status = await child.wait()
    finally:
        await child.stop()
        ours.close()
    if status != 0:
        log.error("QEMU exited", status=status, last_lines=list(child.tail))
        raise GuestExited(child.last_words(child.what + ":"))
    return status
