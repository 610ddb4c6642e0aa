"""Real `mmiobus serve` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MMIOBUS = str(Path(sys.executable).with_name("mmiobus"))


@dataclass
class ServerProcess:
    """A running server: its TCP and unix-socket addresses, and its log."""

    proc: subprocess.Popen[str]
    tcp: str
    unix: str
    log_path: Path
    workdir: tempfile.TemporaryDirectory[str] = field(repr=False)

    @property
    def addresses(self) -> list[str]:
        return [self.tcp, self.unix]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the server and wait for it to exit; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"server did not exit within {timeout}s:\n{self.log()}"
                ) from None
        self.workdir.cleanup()
        return self.proc.returncode


def start_server(
    *args: str,
    config: str | Path | None = None,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start `mmiobus serve` on a free loopback port and a unix socket; wait until it listens."""
    workdir = tempfile.TemporaryDirectory(prefix="mmiobus-test-")
    sock = Path(workdir.name) / "bus.sock"
    log_path = Path(workdir.name) / "server.log"
    cmd = [MMIOBUS, "serve", "--listen", "127.0.0.1:0", "--listen", f"unix:{sock}", *args]
    if config is not None:
        cmd += ["--config", str(config)]
    log = open(log_path, "w")  # noqa: SIM115 - the server keeps writing after we return
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
    )
    log.close()
    addresses: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while len(addresses) < 2:
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            raise AssertionError(
                f"server exited with {proc.returncode} before listening:\n{log_path.read_text()}"
            )
        if line.startswith("mmiobus: listening on "):
            addresses.append(line.split()[-1])
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not listen within {timeout}s")
    tcp = next(a for a in addresses if not a.startswith("unix:"))
    unix = next(a for a in addresses if a.startswith("unix:"))
    return ServerProcess(proc, tcp, unix, log_path, workdir)
