"""A guest program of a test's own on riscv-virt's CPU, run in its own process (`mmiobus cpu
run`) or in the server (`serve --cpu`); the machine's uart0 is left to the test (the CPU waits
for a device to serve it)."""

from __future__ import annotations

from pathlib import Path

from .firmware import CpuProcess, start_cpu
from .rvasm import Program
from .servers import ServerProcess, start_server
from .wait import wait_for


class RiscvGuest:
    """``program`` on riscv-virt's cpu0; ``where``: "process" or "server"."""

    def __init__(self, tmp_path: Path, program: Program, where: str) -> None:
        image = tmp_path / "guest.bin"
        image.write_bytes(program.to_bytes())
        extra = ["--cpu", "cpu0", "--firmware", str(image)] if where == "server" else []
        self.server: ServerProcess = start_server("--machine", "riscv-virt", *extra)
        self.process: CpuProcess | None = None
        if where == "process":
            self.process = start_cpu(self.server.tcp, "--firmware", str(image), "--timeout", "60")

    def log(self) -> str:
        """The CPU's log: its process's, or the server's."""
        return self.process.log() if self.process is not None else self.server.log()

    def summary(self) -> str:
        """The run's summary once the guest powered off."""
        if self.process is not None:
            status, stdout, log = self.process.wait()
            assert status == 0, log
            return stdout
        wait_for(lambda: "CPU stopped" in self.server.log(), 60, message=self.server.log)
        return self.server.log()

    def stop(self) -> None:
        if self.process is not None:
            self.process.interrupt()
            self.process.wait()
        assert self.server.stop() == 0, self.server.log()
