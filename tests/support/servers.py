"""Real `mmiobus serve` processes for end-to-end tests, and the factory behind the
``machine_server`` fixture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MMIOBUS = str(Path(sys.executable).with_name("mmiobus"))
# The folder holding the `support` package: on every server's and device's PYTHONPATH, so that
# they import the test device models (support.models) by the same names as the tests do.
TESTS = Path(__file__).resolve().parent.parent


def process_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process the tests start: this one's, with the test models
    importable, updated with ``extra``."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


@dataclass
class ServerProcess:
    """A running server: its TCP and unix-socket addresses (and its ``--mtls-listen`` ones),
    and its log."""

    proc: subprocess.Popen[str]
    tcp: str
    unix: str
    log_path: Path
    workdir: tempfile.TemporaryDirectory[str] = field(repr=False)
    mtls: list[str] = field(default_factory=list)
    _final_log: str | None = field(default=None, repr=False)

    @property
    def addresses(self) -> list[str]:
        return [self.tcp, self.unix]

    def log(self) -> str:
        """What the server wrote to standard error (kept after ``stop()``)."""
        if self._final_log is not None:
            return self._final_log
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the server and wait for it to exit; returns its exit status. Safe to call
        again, and after the server exited by itself."""
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
        if self._final_log is None and self.log_path.exists():
            self._final_log = self.log_path.read_text(errors="replace")
        self.workdir.cleanup()
        return self.proc.returncode


def start_server(
    *args: str,
    config: str | Path | None = None,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Start `mmiobus serve` on a free loopback port and a unix socket; wait until it listens.
    The test models are importable in it (``process_env``)."""
    workdir = tempfile.TemporaryDirectory(prefix="mmiobus-test-")
    sock = Path(workdir.name) / "bus.sock"
    log_path = Path(workdir.name) / "server.log"
    cmd = [MMIOBUS, "serve", "--listen", "127.0.0.1:0", "--listen", f"unix:{sock}", *args]
    if config is not None:
        cmd += ["--config", str(config)]
    log = open(log_path, "w")  # noqa: SIM115 - the server keeps writing after we return
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=process_env(env)
    )
    log.close()
    addresses: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    mtls = args.count("--mtls-listen")  # printed last
    while len(addresses) < 2 + args.count("--listen") + mtls:
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
    tcp, unix = addresses[:2]  # in the order of the options
    return ServerProcess(proc, tcp, unix, log_path, workdir, addresses[len(addresses) - mtls :])


class ServerFactory:
    """Starts servers on demand and stops them all at ``close()``: what the ``machine_server``
    fixture hands to a test module."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._servers: list[ServerProcess] = []

    def __call__(
        self,
        machine: str | Path | None = None,
        *flags: str,
        files: Mapping[str, bytes] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ServerProcess:
        """A started server with command-line ``flags``, on ``machine``: YAML text (a ``str``,
        written to a file of its own with ``files`` beside it, for the description's ``file:``
        fields), a description file (a ``Path``), or ``None`` for the built-in machine."""
        config: Path | None = None
        if isinstance(machine, Path):
            config = machine
        elif machine is not None:
            folder = Path(tempfile.mkdtemp(prefix="machine-", dir=self._workdir))
            for name, data in (files or {}).items():
                (folder / name).write_bytes(data)
            config = folder / "machine.yaml"
            config.write_text(machine)
        if files and not isinstance(machine, str):
            raise ValueError(f"files {sorted(files)} need a machine given as YAML text")
        server = start_server(*flags, config=config, env=env)
        self._servers.append(server)
        return server

    def close(self) -> None:
        """Stop every server started here (SIGTERM); fail if one did not exit with status 0."""
        problems = []
        for server in self._servers:
            try:
                status = server.stop()
            except AssertionError as e:
                problems.append(str(e))
                continue
            if status != 0:
                problems.append(f"server exited with {status}:\n{server.log()}")
        self._servers.clear()
        if problems:
            raise AssertionError("\n".join(problems))
