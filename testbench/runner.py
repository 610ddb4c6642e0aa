"""Running a bench as processes (``mmiobus up``, and the pytest plugin's bench fixture).

The bus starts first, listening where the bench says and on a unix socket of this run's own
(reachable whatever network namespace the bus is in) with its metrics beside it. Then the
processes start a wave at a time (``Bench.waves``), each wave once the bus answers its health
check and the wave before is ready. While the bench runs, the expectations are watched and the
status shown; it ends when they are all met, when they time out, when a process that should
have gone on ends (or one that should end fails), or when it is asked to stop — and then every
process is stopped, in the reverse order. ``BenchFailure`` says why a bench failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from pathlib import Path

from .commands import Command, machine_with_devices, process_command, serve_command
from .credentials import CredentialError, LocalCredentials, local_credentials
from .expect import ConsoleWatch, ExitWatch, MemoryWatch, Watch
from .load import Bench
from .output import Output
from .preflight import hosts_problem, ports_problem
from .processes import KINDS, CpuProcess, Site, TraceProcess, trace_argv
from .procs import Proc
from .status import Reading, line, read, scrape

STOP_GRACE = 10.0
EXIT_INTERRUPTED = 130


class BenchFailure(Exception):
    """A bench that could not start or did not do what it should: ``lines[0]`` says what in
    one line, the others (a process's last lines, expectations left) show why."""

    def __init__(self, *lines: str, status: int = 1) -> None:
        super().__init__(lines[0])
        self.lines = list(lines)
        self.status = status


class BenchRun:
    """One run of a bench; ``run()`` does it all, ``start()``/``stop()`` let a caller (the
    pytest plugin) hold it running meanwhile."""

    def __init__(
        self,
        bench: Bench,
        output: Output,
        *,
        record: str | None = None,
        listen: list[str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.bench = bench
        self.output = output
        self.record = record
        self.listen = listen if listen is not None else list(bench.spec.bus.listen)
        self.start_timeout = start_timeout
        self.rundir = Path(tempfile.mkdtemp(prefix="mmiobus-up-"))
        self.control = f"unix:{self.rundir / 'bus.sock'}"
        self.metrics = f"unix:{self.rundir / 'metrics.sock'}"
        self.addresses: list[str] = []  # where the bus listens (ports resolved)
        self.procs: dict[str, Proc] = {}
        self.started: list[list[Proc]] = []  # waves, in the order they started
        self.watches: list[Watch] = []
        self.credentials = LocalCredentials()
        self.started_at = time.monotonic()
        self.stop_requested = asyncio.Event()
        self._reading: Reading | None = None
        self._traces = 0

    # -- starting -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the bus and every process, each once it may; ``BenchFailure`` if one cannot."""
        problem = hosts_problem(self.bench)
        try:
            self.credentials = local_credentials(self.bench, self.rundir)
        except CredentialError as e:
            problem = problem or str(e)
        problem = problem or ports_problem(self.bench, self.listen)
        if problem:
            raise BenchFailure(problem)
        names = [*self.bench.processes, "bus", "record"]
        self.output.name_width(names)
        await self._start_bus()
        self._watch_expectations()
        if self.record is not None:
            name = "record" if "record" not in self.bench.processes else "record-up"
            fmt = "chrome" if self.record.endswith(".json") else "jsonl"
            spec = TraceProcess(kind="trace", out=str(Path(self.record).resolve()), format=fmt)
            argv = trace_argv(spec, name, Site(self.control))
            env = self.credentials.for_process("")
            await self._start_wave([Command(name, argv, env, kind=KINDS["trace"])])
        for wave in self.bench.waves:
            await self._start_wave([self.command(name) for name in wave])

    def command(self, name: str) -> Command:
        """Process ``name``'s command, connecting where it can reach the bus from."""
        server = self.server_for(self.bench.spec.processes[name].host)
        c = process_command(self.bench, name, Site(server))
        c.env.setdefault("MMIOBUS_SERVER", server)
        c.env.update(self.credentials.for_process(name))
        return c

    def server_for(self, host: str | None) -> str:
        """The address a process on ``host`` (None: this one's) reaches the bus at: where the
        bus listens if it is on the bus's host (or the bench names another host), else this
        run's unix socket."""
        tcp = [a for a in self.addresses if not a.startswith("unix:")]
        if tcp and (host == self.bench.spec.bus.host or host is not None):
            return tcp[0]
        return self.addresses[0] if self.bench.spec.bus.host is None else self.control

    async def _start_bus(self) -> None:
        text = machine_with_devices(self.bench)
        machine = None
        if text is not None:
            machine = str(self.rundir / "machine.yaml")
            Path(machine).write_text(text)
        command = serve_command(
            self.bench, [*self.listen, self.control], machine_file=machine, metrics=[self.metrics]
        )
        command.argv += self.credentials.bus_options
        bus = Proc(command, self.output)
        expected = len(self.listen) + 1

        def listening(text: str) -> None:
            if text.startswith("mmiobus: listening on "):
                self.addresses.append(text.split()[-1])
                if len(self.addresses) == expected:
                    bus.ready.set()

        bus.on_line.append(listening)
        await self._launch(bus)
        await self._ready(bus)
        self.addresses = [a for a in self.addresses if a != self.control] or [self.control]
        await self._healthy()
        shown = ", ".join(self.addresses)
        self.output.say(f"the bus listens on {shown} ({self._machine_name()})")

    def _machine_name(self) -> str:
        bus = self.bench.spec.bus
        return (
            f"machine {bus.config}"
            if bus.config
            else f"built-in machine {bus.machine or 'default'}"
        )

    async def _start_wave(self, commands: list[Command]) -> None:
        await self._healthy()
        procs = [Proc(c, self.output) for c in commands]
        for proc in procs:
            self._hook(proc)
            await self._launch(proc)
        self.started.append(procs)
        for proc in procs:
            await self._ready(proc)

    async def start_process(self, command: Command) -> Proc:
        """Start one more process now (the pytest plugin's devices), once the bus is healthy;
        returns it ready."""
        await self._start_wave([command])
        return self.started[-1][0]

    async def _launch(self, proc: Proc) -> None:
        try:
            await proc.start(self.bench.folder, {})
        except OSError as e:
            raise BenchFailure(f"cannot start {proc.name}: {e.strerror or e}") from None
        self.procs[proc.name] = proc
        kind = proc.command.kind
        if kind is None:
            pass  # the bus: ready once it says where it listens
        elif kind.ready == "started":
            proc.ready.set()
        elif kind.ready == "line":

            def ready_line(text: str, proc: Proc = proc, marker: str = kind.ready_line) -> None:
                if text.startswith("mmiobus ") and marker in text:
                    proc.ready.set()

            proc.on_line.append(ready_line)
        elif kind.ready == "subscribed":
            self._traces += 1

    async def _ready(self, proc: Proc) -> None:
        """Until ``proc`` is ready; ``BenchFailure`` if it exits first or takes too long."""
        kind = proc.command.kind
        deadline = time.monotonic() + self.start_timeout
        while not proc.ready.is_set():
            if proc.returncode is not None:
                await proc.wait()
                raise BenchFailure(
                    f"{proc.name} exited with status {proc.returncode} before it was ready; "
                    "its last lines:",
                    *proc.tail(),
                )
            if kind is not None and kind.ready == "subscribed":
                reading = await self._read_metrics()
                if reading is not None and reading.trace_subscribers >= self._traces:
                    proc.ready.set()
                    break
            if time.monotonic() > deadline:
                raise BenchFailure(
                    f"{proc.name} was not ready within {self.start_timeout:g}s; its last lines:",
                    *proc.tail(),
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.ready.wait(), 0.05)

    async def _healthy(self) -> None:
        """Until the bus answers its health check SERVING."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        from mmiobus.endpoints import open_channel

        deadline = time.monotonic() + self.start_timeout
        bus = self.procs["bus"]
        async with open_channel(self.control, credentials=self.credentials.client()) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if bus.returncode is not None or time.monotonic() > deadline:
                    await bus.stop(1)
                    raise BenchFailure(f"the bus is not healthy (status {bus.returncode}); its "
                                       "last lines:", *bus.tail())  # fmt: skip
                await asyncio.sleep(0.05)

    # -- watching -----------------------------------------------------------------------------

    def _watch_expectations(self) -> None:
        e = self.bench.spec.expect
        for c in e.console:
            self.watches.append(ConsoleWatch(c, self.bench.folder))
        for m in e.memory:
            self.watches.append(MemoryWatch(m))
        for x in e.exit:
            is_cpu = isinstance(self.bench.spec.processes[x.process], CpuProcess)
            self.watches.append(ExitWatch(x, is_cpu))

    def _hook(self, proc: Proc) -> None:
        """Give ``proc``'s output to the watches that want it."""
        for w in self.watches:
            if isinstance(w, ConsoleWatch) and w.expectation.process == proc.name:
                proc.on_output.append(w.feed)
            elif isinstance(w, ExitWatch) and w.expectation.process == proc.name:
                proc.on_line.append(w.feed)

    async def _read_metrics(self) -> Reading | None:
        try:
            text = await asyncio.to_thread(scrape, self.metrics, 2.0)
        except OSError:
            return None
        return read(text)

    async def supervise(self) -> None:
        """Until the bench is done (returns) or has failed (``BenchFailure``)."""
        from mmiobus.client import AsyncBus

        timeout = self.bench.spec.expect.timeout / 1000
        since = time.monotonic()
        next_status = 0.0
        one_shots = [p for wave in self.started for p in wave if not p.command.lasting]
        async with AsyncBus(self.control, timeout=5, credentials=self.credentials.client()) as bus:
            while True:
                for w in self.watches:
                    if isinstance(w, ConsoleWatch):
                        w.poll_file()
                    elif isinstance(w, MemoryWatch) and not w.met:
                        await w.poll(bus)
                self._check_processes()
                if self.watches and all(w.met for w in self.watches):
                    self.output.say(f"all {len(self.watches)} expectations met")
                    return
                if (
                    not self.watches
                    and one_shots
                    and all(p.returncode is not None for p in one_shots)
                ):
                    return
                if self.stop_requested.is_set():
                    self._interrupted()
                    return
                if self.watches and time.monotonic() - since > timeout:
                    raise BenchFailure(
                        f"expectations not met within {timeout:g}s:",
                        *(f"  {w.describe()}: {w.seen()}" for w in self.watches if not w.met),
                    )
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + 1.0
                    await self._show_status(bus)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_requested.wait(), 0.1)

    def _check_processes(self) -> None:
        for proc in self.procs.values():
            status = proc.returncode
            if status is None or proc.stopping or proc.judged:
                continue
            proc.judged = True
            watch = next((w for w in self.watches if isinstance(w, ExitWatch)
                          and w.expectation.process == proc.name), None)  # fmt: skip
            if watch is not None:
                watch.ended(status)
                if watch.failed:
                    raise BenchFailure(f"{proc.name}: expected {watch.describe()}, but "
                                       f"{watch.seen()}; its last lines:", *proc.tail())  # fmt: skip
                continue
            if proc.command.lasting:
                raise BenchFailure(f"{proc.name} exited with status {status} while the bench "
                                   "ran; its last lines:", *proc.tail())  # fmt: skip
            if status != 0:
                raise BenchFailure(f"{proc.name} failed (exit status {status}); its last "
                                   "lines:", *proc.tail())  # fmt: skip
            self.output.say(f"{proc.name} finished")

    def _interrupted(self) -> None:
        unmet = [w for w in self.watches if not w.met]
        if unmet:
            raise BenchFailure(
                "stopped before the expectations were met:",
                *(f"  {w.describe()}: {w.seen()}" for w in unmet),
                status=EXIT_INTERRUPTED,
            )

    async def _show_status(self, bus: object) -> None:
        if self.output.mode == "off":
            return
        reading = await self._read_metrics()
        if reading is None:
            return
        try:
            names = [d.name for d in await bus.devices()]  # type: ignore[attr-defined]
        except Exception:
            names = []
        text = line(reading, self._reading, time.monotonic() - self.started_at, names)
        self._reading = reading
        self.output.status(text)

    # -- stopping -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every process, the last started first, and the bus last."""
        for wave in reversed(self.started):
            await asyncio.gather(*(p.stop(STOP_GRACE) for p in wave))
        bus = self.procs.get("bus")
        if bus is not None:
            await bus.stop(STOP_GRACE + 5, signal.SIGTERM)
        self.output.close()
        shutil.rmtree(self.rundir, ignore_errors=True)

    async def run(self) -> int:
        """Start, watch, stop: 0 when the bench did what it should (``BenchFailure`` when it
        did not). SIGINT and SIGTERM stop it."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_requested.set)
        try:
            starting = asyncio.ensure_future(self.start())
            stopper = asyncio.ensure_future(self.stop_requested.wait())
            await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not starting.done():  # Ctrl-C while starting
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                raise BenchFailure("stopped while the bench started", status=EXIT_INTERRUPTED)
            starting.result()
            if self.watches:
                self.output.say(f"running; watching {len(self.watches)} expectations")
            else:
                self.output.say("running; Ctrl-C stops the bench")
            await self.supervise()
            return 0
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()
