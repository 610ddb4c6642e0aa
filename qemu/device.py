"""QEMU's device models as bus devices: ``serve`` starts QEMU stopped, checks the windows
against its memory map, intercepts its interrupt controller's inputs, and serves the windows
as one device session until stopped or until QEMU goes away.

Every access to a window becomes one qtest access at the window's QEMU address plus the
offset, of the same size, in the order the bus sent them, answered as soon as QEMU answers.
Writes to regions with posted writes are not waited for. An intercepted input N that rises
or falls sets bus line ``DEVICE.LINE`` (``irqs = {N: LINE}``).

QEMU's lifetime is the session's: stopping the device stops QEMU, and QEMU going away ends the
session (the bus then applies each claimed region's ``absent`` rule and unmaps the registered
ones) with ``QemuExited`` carrying its last words; its last lines of standard error are logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from mmiobus.credentials import Credentials
from mmiobus.devices import Device
from mmiobus.memory.access import MemTxResult
from mmiobus.peers.lines import ChannelClosed
from mmiobus.peers.session import PeerExited, PeerRunner, region_layout, serve_while_alive
from mmiobus.peers.windows import Window, check_inside, resolve

from .launch import Qemu, QemuConfig
from .machine_view import find_irq_controller, mapped_ranges
from .qmp import Qmp, QmpError
from .qtest import Qtest, QtestError

log = structlog.get_logger("mmiobus.qemu")


QemuExited = PeerExited  # QEMU went away while serving; carries its last words
RESET_TIMEOUT = 10.0  # seconds QEMU has to report a machine reset done


class QemuDevice(Device):
    """The device a QEMU machine is to the bus: accesses to a window go to QEMU over qtest."""

    valid = impl = (1, 8)  # registered windows; claimed regions keep the description's

    def __init__(self, qtest: Qtest, qmp: Qmp) -> None:
        super().__init__()
        self.qtest = qtest
        self.qmp = qmp
        self.window_of: dict[str, Window] = {}  # region id -> its window (the runner's)

    def _target(self, offset: int) -> int:
        region = self.region
        assert region is not None
        target = self.window_of[region.id].target
        assert target is not None
        return target + offset

    def read(self, offset: int, size: int) -> Any:
        try:
            return self.qtest.read(self._target(offset), size)
        except (ChannelClosed, QtestError):
            return 0, MemTxResult.ERROR  # QEMU has gone: the session is ending

    async def reset(self) -> None:
        """Reset QEMU's machine: QEMU 7.2 resets whole machines, not one device, so every
        window of this device goes back to its reset state at once (the interrupt lines
        follow QEMU's outputs as they fall)."""
        try:
            await asyncio.wait_for(self.qmp.system_reset(), RESET_TIMEOUT)
        except TimeoutError:  # the accesses after the reset must not wait for ever
            log.warning("QEMU did not report its reset", within=f"{RESET_TIMEOUT:g}s")
        except (QmpError, OSError) as e:
            log.warning("QEMU did not reset", reason=str(e))

    def write(self, offset: int, size: int, value: int) -> Any:
        region = self.region
        posted = region is not None and region.posted_writes
        try:
            self.qtest.write(self._target(offset), size, value, posted)
        except (ChannelClosed, QtestError):
            return MemTxResult.ERROR
        return None


@dataclass
class QemuDeviceOptions:
    """What ``serve`` runs: the bus, the session's name, the windows, QEMU, and the
    interrupt controller whose inputs become bus lines (``irqs``: input number -> line)."""

    server: str
    name: str
    windows: list[Window]
    qemu: QemuConfig
    irq_controller: str | None = None
    irqs: dict[int, str] = field(default_factory=dict)
    token: str = ""
    credentials: Credentials | None = None  # default: the environment's (mmiobus.credentials)
    reconnect: bool = True
    on_ready: Callable[[PeerRunner, list[Any]], None] | None = None


async def serve(opts: QemuDeviceOptions) -> None:
    """Serve until cancelled (QEMU is stopped) or until QEMU goes away (``QemuExited``).
    Every check happens before the session attaches: a bad window, an unknown interrupt
    controller or a QEMU that cannot start leave the bus as it was."""
    if opts.irqs and opts.irq_controller is None:
        raise ValueError("--irq needs --irq-controller (the device whose inputs are intercepted)")
    windows = opts.windows
    if any(w.claimed for w in windows):
        windows = resolve(windows, await region_layout(opts.server, opts.credentials), "QEMU")
    else:
        windows = resolve(windows, {}, "QEMU")
    qemu = await Qemu.start(opts.qemu)
    log.info("QEMU started", pid=qemu.child.proc.pid, machine=opts.qemu.machine)
    try:
        covered = await mapped_ranges(qemu.qmp)
        what = f"QEMU's {opts.qemu.machine or 'default'} machine"
        for w in windows:
            check_inside(w, covered, what)
        device = QemuDevice(qemu.qtest, qemu.qmp)
        if opts.irq_controller is not None:
            path = await find_irq_controller(qemu.qmp, opts.irq_controller)
            qemu.qtest.intercept_irqs(path)
            log.info("intercepting interrupts", controller=path, lines=opts.irqs)

        def on_irq(n: int, level: bool) -> None:
            line = opts.irqs.get(n)
            if line is not None:
                device.irq(line).set(level)

        qemu.qtest.on_irq = on_irq
        runner = PeerRunner(
            device,
            opts.server,
            name=opts.name,
            windows=windows,
            token=opts.token,
            credentials=opts.credentials,
            reconnect=opts.reconnect,
            on_ready=opts.on_ready,
        )
        device.window_of = runner.window_of
        await serve_while_alive(runner, _ended(qemu), "QEMU")
    finally:
        await qemu.stop()


async def _ended(qemu: Qemu) -> str:
    reason = await qemu.ended()
    log.error("QEMU's last lines", lines=list(qemu.child.tail), status=qemu.child.proc.returncode)
    return reason
