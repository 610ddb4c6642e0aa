"""Real `mmiobus device run` processes for end-to-end tests."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .servers import MMIOBUS, process_env


@dataclass
class DeviceProcess:
    """A running device process and its log."""

    proc: subprocess.Popen[str]
    name: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the device vanishes without a word."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def wait_serving(self, timeout: float = 30.0) -> str:
        """Block until the device prints its `serving` line again (after a reconnect)."""
        return _wait_line(self.proc, "serving", timeout, self.log_path)


def _wait_line(proc: subprocess.Popen[str], word: str, timeout: float, log_path: Path) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            raise AssertionError(
                f"device exited with {proc.returncode} before {word!r}:\n{log_path.read_text()}"
            )
        if word in line:
            return line
    raise AssertionError(
        f"device did not print {word!r} within {timeout}s:\n{log_path.read_text()}"
    )


def start_device(
    target: str,
    server: str,
    *args: str,
    name: str | None = None,
    timeout: float = 30.0,
    wait: bool = True,
    env: dict[str, str] | None = None,
) -> DeviceProcess:
    """Start `mmiobus device run TARGET --server SERVER ARGS...`; by default wait until it
    serves its regions (it prints `mmiobus device NAME: serving ...`). The test models are
    importable in it (``process_env``)."""
    log_path = Path(tempfile.mkstemp(prefix="mmiobus-device-", suffix=".log")[1])
    cmd = [MMIOBUS, "device", "run", target, "--server", server, *args]
    if name is not None:
        cmd += ["--name", name]
    log = open(log_path, "w")  # noqa: SIM115 - the device keeps writing after we return
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=process_env(env)
    )
    log.close()
    dev = DeviceProcess(proc, name or "", log_path)
    if wait:
        _wait_line(proc, "serving", timeout, log_path)
    return dev
