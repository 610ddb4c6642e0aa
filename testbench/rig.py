"""A bus for a test, from blocking code: started on a machine (or from a bench file), with
device models attached as processes or in the test's own process, a client, consoles to wait
on and recordings of the accesses. The pytest plugin's fixtures hand these out; they work the
same without pytest::

    with BusRig.start("riscv-virt", workdir) as rig:
        uart = rig.device("mmiobus.devices.models.uart16550:Uart16550", claim="uart0",
                          args={"output": "stdout", "input": "none"})
        rig.bus.write(0x10000000, b"A")
        rig.console(uart).wait_for("A")

Everything runs on one event loop in a thread of its own (``BenchRun``'s), and everything it
started stops at ``close()``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmiobus.client.loopthread import LoopThread

from .load import Bench, load_bench
from .output import Output
from .processes import CpuProcess, DeviceProcess
from .procs import Proc
from .runner import BenchFailure, BenchRun
from .schema import BenchSpec, BusSpec, InServerDevice

TIMEOUT = 30.0


class Console:
    """What a process prints on standard output, or what a device writes to a file, to wait on."""

    def __init__(self, source: Proc | Path) -> None:
        self.source = source

    @property
    def text(self) -> str:
        """Everything so far."""
        if isinstance(self.source, Path):
            try:
                return self.source.read_text(errors="replace")
            except OSError:
                return ""
        return self.source.stdout

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        """Until ``text`` has appeared; returns everything so far. ``AssertionError`` saying
        what appeared instead after ``timeout`` seconds."""
        return wait(lambda: text in self.text and self.text, timeout,
                    lambda: f"{text!r} did not appear within {timeout:g}s; the console shows "
                    f"{self.text[-500:]!r}")  # fmt: skip


def wait(what: Callable[[], Any], timeout: float, message: Callable[[], str]) -> Any:
    """Poll ``what()`` until it is truthy (its value), or ``AssertionError(message())``."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message())
        time.sleep(0.02)


class BusRig:
    """A running bench (at least a bus) and what a test attached to it; see the module
    docstring."""

    def __init__(self, bench: Bench, workdir: Path, record: str | None = None) -> None:
        self.workdir = workdir
        self.log_path = workdir / "bench.log"
        self._log = open(self.log_path, "w", buffering=1)  # noqa: SIM115 - open while it runs
        self.output = Output(self._log, color=False, status="off")
        self.thread = LoopThread()
        self.run = BenchRun(bench, self.output, record=record, listen=["127.0.0.1:0"])
        self._bus: Any = None
        self._closers: list[Callable[[], None]] = []
        self._names = 0

    @classmethod
    def start(
        cls,
        machine: str | Path = "default",
        workdir: Path | None = None,
        *,
        devices: dict[str, dict[str, Any]] | None = None,
        options: list[str] | None = None,
    ) -> BusRig:
        """A bus on ``machine`` (a built-in machine's name, a description ``Path``, or YAML
        text), with ``devices`` run in the server for those regions (``{region: {"class":
        "MODULE:CLASS", "args": {...}}}``) and more ``mmiobus serve`` ``options``."""
        import tempfile

        workdir = Path(workdir or tempfile.mkdtemp(prefix="mmiobus-rig-"))
        if isinstance(machine, str) and "\n" in machine:
            (workdir / "machine.yaml").write_text(machine)
            machine = workdir / "machine.yaml"
        bus = BusSpec(
            machine=None if isinstance(machine, Path) else machine,
            config=str(Path(machine).resolve()) if isinstance(machine, Path) else None,
            devices={k: InServerDevice.model_validate(v) for k, v in (devices or {}).items()},
            options=list(options or []),
        )
        bench = Bench(BenchSpec(bus=bus), workdir / "bench.yaml")
        return cls._started(bench, workdir)

    @classmethod
    def from_bench(cls, path: str | Path, workdir: Path, record: str | None = None) -> BusRig:
        """The bench in file ``path`` (its processes started, its expectations not waited
        for: ``wait()``)."""
        return cls._started(load_bench(path), workdir, record)

    @classmethod
    def _started(cls, bench: Bench, workdir: Path, record: str | None = None) -> BusRig:
        rig = cls(bench, workdir, record)
        try:
            rig.thread.run(rig.run.start())
        except BenchFailure as e:
            rig.close()
            raise AssertionError(
                "\n".join([*e.lines, f"(the bench's log: {rig.log_path})"])
            ) from None
        return rig

    # -- what a test uses ---------------------------------------------------------------------

    @property
    def address(self) -> str:
        """Where the bus listens (TCP)."""
        return self.run.addresses[0]

    @property
    def bus(self) -> Any:
        """A blocking ``mmiobus.client.Bus`` on it (made once, closed with the rig)."""
        if self._bus is None:
            from mmiobus.client import Bus

            self._bus = Bus(self.address, credentials=self.run.credentials.client())
        return self._bus

    def device(
        self,
        target: Any,
        *,
        claim: str | list[str] | None = None,
        at: int | None = None,
        size: int | None = None,
        name: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> Any:
        """Attach a device model: ``target`` "MODULE:CLASS" runs as a process (`mmiobus device
        run`; returns its ``Proc``), a ``Device`` instance runs in this process (returns an
        ``InProcessDevice`` whose ``.device`` is the instance). Returns once it serves."""
        claims = [claim] if isinstance(claim, str) else list(claim or [])
        if not isinstance(target, str):
            from .inprocess import InProcessDevice

            attached = InProcessDevice(target, self.address, claims, at, size, name,
                                       token=self.run.credentials.token or "")  # fmt: skip
            self._closers.append(attached.stop)
            return attached
        name = name or (claims[0] if claims else self._fresh("device"))
        spec = DeviceProcess.model_validate({"kind": "device", "class": target, "claim": claims,
                                             "at": at, "size": size, "args": args or {}})  # fmt: skip
        return self._process(name, spec)

    def cpu(self, **fields: Any) -> Proc:
        """Run a CPU of the machine (`mmiobus cpu run`; the fields of a bench's cpu process:
        firmware, payload, until, timeout, ...)."""
        return self._process(fields.pop("process_name", None) or self._fresh("cpu"),
                             CpuProcess.model_validate({"kind": "cpu", **fields}))  # fmt: skip

    def _fresh(self, stem: str) -> str:
        self._names += 1
        return f"{stem}{self._names}"

    def _process(self, name: str, spec: Any) -> Proc:
        # The process imports what the test can (its MODULE:CLASS beside the test, say).
        folders = [p for p in sys.path if p and os.path.isdir(p)]
        spec.env.setdefault("PYTHONPATH", os.pathsep.join(folders))
        self.run.bench.spec.processes[name] = spec
        try:
            return self.thread.run(self.run.start_process(self.run.command(name)))
        except BenchFailure as e:
            raise AssertionError("\n".join(e.lines)) from None

    def console(self, source: Proc | str | Path) -> Console:
        """A console to wait on: a process (its standard output, from now on) or a file a
        device writes (``output: file:PATH``; relative to the working folder)."""
        if isinstance(source, Proc):
            return Console(source)
        if isinstance(source, str) and source in self.run.procs:
            return Console(self.run.procs[source])
        path = Path(source)
        return Console(path if path.is_absolute() else self.workdir / path)

    def record(self, **filters: Any) -> Any:
        """Record the accesses the bus serves from now on (``Bus.trace`` filters); returns a
        ``Recording`` (``.events``, ``.wait_for(predicate)``)."""
        from .inprocess import Recording

        recording = Recording(self.address, filters, self.trace_subscribers,
                              self.run.credentials.client())  # fmt: skip
        self._closers.append(recording.stop)
        return recording

    def trace_subscribers(self) -> int:
        """How many trace subscribers the bus has now (its metrics)."""
        from .status import read, scrape

        return int(read(scrape(self.run.metrics)).trace_subscribers)

    def wait(self) -> None:
        """Until the bench's expectations are met; ``AssertionError`` saying which were not."""
        try:
            self.thread.run(self.run.supervise())
        except BenchFailure as e:
            raise AssertionError(
                "\n".join([*e.lines, f"(the bench's log: {self.log_path})"])
            ) from None

    def log(self) -> str:
        """Every line the bench's processes printed, prefixed with their names."""
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Stop everything this rig started."""
        for close in reversed(self._closers):
            close()
        if self._bus is not None:
            self._bus.close()
        try:
            self.thread.run(self.run.stop())
        finally:
            self.thread.stop()
            self._log.close()

    def __enter__(self) -> BusRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
