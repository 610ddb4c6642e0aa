"""Starting QEMU stopped (``-S``) with a qtest and a QMP connection, and its serial ports
routed where the user says.

    qemu-system-ARCH -S -machine M -qtest unix:Q -qtest-log /dev/null -qmp unix:M
                     -display none -nodefaults [-chardev ... -serial chardev:serialN]... ARGS

QEMU connects to sockets this process listens on (as libqtest does). The qtest log goes to
/dev/null: QEMU logs every command, and a log nobody drains would stall it. The CPUs never
run: the machine's devices are driven only through qtest, and its virtual clock stands still
(see docs/peers.md for what that means for timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mmiobus.peers.child import ChildProcess, PeerStartError, listening_socket

from .qmp import Qmp
from .qtest import Qtest

START_TIMEOUT = 30.0


class QemuStartError(Exception):
    """QEMU could not start with these options; carries its own error line."""


class SerialSpecError(ValueError):
    """A ``--serial`` value that is not one of the forms QEMU's serial ports can go to."""


def _escape(text: str) -> str:
    return text.replace(",", ",,")  # QEMU's option syntax doubles commas inside values


def serial_options(specs: list[str]) -> list[str]:
    """QEMU options sending serial port N to ``specs[N]``: ``stdout``, ``file:PATH``,
    ``tcp:HOST:PORT`` or ``unix:PATH`` (a socket QEMU listens on; input comes back from it),
    or ``none``."""
    args: list[str] = []
    for n, spec in enumerate(specs):
        kind, _, rest = spec.partition(":")
        cid = f"serial{n}"
        if spec == "stdout":
            backend = f"file,id={cid},path=/dev/stdout,append=on"
        elif spec == "none":
            backend = f"null,id={cid}"
        elif kind == "file" and rest:
            backend = f"file,id={cid},path={_escape(rest)}"
        elif kind == "unix" and rest:
            backend = f"socket,id={cid},path={_escape(rest)},server=on,wait=off"
        elif kind == "tcp" and rest.rpartition(":")[2].isdigit():
            host, _, port = rest.rpartition(":")
            backend = f"socket,id={cid},host={host or '127.0.0.1'},port={port},server=on,wait=off"
        else:
            raise SerialSpecError(
                f"--serial {spec!r}: write stdout, file:PATH, tcp:HOST:PORT, unix:PATH or none"
            )
        args += ["-chardev", backend, "-serial", f"chardev:{cid}"]
    return args


@dataclass
class QemuConfig:
    """What to run: the program, the machine (``-machine`` value, None for QEMU's default),
    where serial ports go, and any further options."""

    program: str
    machine: str | None = None
    serials: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def argv(self, qtest_sock: Path, qmp_sock: Path) -> list[str]:
        argv = [self.program, "-S"]
        if self.machine:
            argv += ["-machine", self.machine]
        argv += [
            "-qtest", f"unix:{qtest_sock}", "-qtest-log", "/dev/null",
            "-qmp", f"unix:{qmp_sock}", "-display", "none", "-nodefaults",
        ]  # fmt: skip
        return argv + serial_options(self.serials) + list(self.extra)


class Qemu:
    """A running QEMU with its qtest and QMP connections; ``stop`` ends it."""

    def __init__(
        self,
        child: ChildProcess,
        qtest: Qtest,
        qmp: Qmp,
        workdir: tempfile.TemporaryDirectory[str],
    ) -> None:
        self.child = child
        self.qtest = qtest
        self.qmp = qmp
        self._workdir = workdir  # the sockets' folder, removed at stop
        qtest.channel.start()

    @classmethod
    async def start(cls, config: QemuConfig, timeout: float = START_TIMEOUT) -> Qemu:
        """Start QEMU and connect; ``QemuStartError`` with QEMU's own words if it exits (or
        says nothing for ``timeout`` seconds) instead."""
        tmp = tempfile.TemporaryDirectory(prefix="mmiobus-qemu-")
        workdir = Path(tmp.name)
        listeners = [listening_socket(str(workdir / n)) for n in ("qtest.sock", "qmp.sock")]
        argv = config.argv(workdir / "qtest.sock", workdir / "qmp.sock")
        child = await ChildProcess.start(argv, Path(config.program).name)
        try:
            qt_conn, qmp_conn = await child.accept(listeners, timeout)
            qmp_reader, qmp_writer = await asyncio.open_unix_connection(sock=qmp_conn)
            qmp = Qmp(qmp_reader, qmp_writer)
            await qmp.handshake()
        except PeerStartError as e:
            tmp.cleanup()
            raise QemuStartError(str(e)) from None
        except BaseException:
            await child.stop()
            tmp.cleanup()
            raise
        finally:
            for s in listeners:
                s.close()
        return cls(child, Qtest(qt_conn), qmp, tmp)

    async def ended(self) -> str:
        """Wait until QEMU goes away (it exited, or closed its qtest connection); why."""
        await self.qtest.channel.wait_closed()
        if self.child.running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.child.wait(), 2.0)
        return self.child.last_words(self.child.what + ":")

    async def stop(self) -> None:
        """Stop QEMU (SIGTERM, then SIGKILL) and close the connections."""
        self.qtest.channel.close("QEMU was stopped")
        self.qmp.close()
        await self.child.stop()
        self._workdir.cleanup()
