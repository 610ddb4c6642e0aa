"""`mmiobus serve`: one machine on one gRPC server, on TCP and/or unix sockets."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import stat
from collections.abc import Callable

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from mmiobus import __version__
from mmiobus.endpoints import parse_address
from mmiobus.machine import Machine
from mmiobus.v1 import bus_pb2, devices_pb2

from . import reflection
from .auth_listen import (
    exposure_warnings,
    private_files,
    server_credentials,
    set_socket_mode,
)
from .authz import Gate
from .config import Security, ServerConfig
from .core import BusCore
from .cpus import CpuRun, InServerCpu
from .metrics import MetricsEndpoint, MetricsListenError
from .services.devices import DeviceService
from .services.irqs import IrqService
from .services.registration import register
from .services.rw import AccessService
from .services.topology import TopologyService
from .services.tracing import TraceService

log = structlog.get_logger("mmiobus.server")

DEFAULT_LISTEN = "127.0.0.1:7170"
BUS = bus_pb2.DESCRIPTOR.services_by_name["Bus"]
DEVICES = devices_pb2.DESCRIPTOR.services_by_name["Devices"]


class ListenError(Exception):
    """The server could not listen where it was asked to."""


class BusServer:
    """A running server: the core, the gRPC server with its services, and where it listens."""

    def __init__(
        self,
        machine: Machine,
        config: ServerConfig | None = None,
        cpus: dict[str, CpuRun] | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self.core = BusCore(machine, self.config, __version__)
        # CPUs to run here: those the description says run in the server, and ``cpus``.
        self.cpu_runs = {
            name: CpuRun() for name, spec in machine.cpus.items() if spec.run == "server"
        }
        for name in cpus or {}:
            if name not in machine.cpus:
                known = ", ".join(machine.cpus) or "none"
                raise ValueError(f"the machine has no CPU named {name!r} (its CPUs: {known})")
        self.cpu_runs.update(cpus or {})
        self.cpus: list[InServerCpu] = []
        self.server: grpc.aio.Server | None = None
        self.health: health.aio.HealthServicer | None = None
        self.addresses: list[str] = []
        self._access: AccessService | None = None
        self.metrics: MetricsEndpoint | None = None  # `--metrics`

    async def start(self, listen: list[str]) -> None:
        lim = self.config.limits
        self.server = grpc.aio.server(
            options=[
                # gRPC's own refusal does not say which option to change: let messages up to
                # twice our limit through to the deserializer, which refuses them by name.
                ("grpc.max_receive_message_length", 2 * lim.max_message_bytes),
                ("grpc.max_send_message_length", lim.max_message_bytes),
                # Without this, Linux lets a second server bind the same port silently.
                ("grpc.so_reuseport", 0),
                # Ping idle connections, so that a device whose host vanished is noticed (its
                # session then ends and its regions fall back), and accept the same from
                # devices and clients.
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.http2.max_pings_without_data", 0),
            ]
        )
        core = self.core
        security = self.config.security
        mutual = security.mutual_everywhere
        ports = [(self._target(address), mutual) for address in listen or [DEFAULT_LISTEN]]
        ports += [(self._target(address), True) for address in security.mtls_listen]
        gate = Gate(security.policy) if security.policy is not None else None
        self._access = AccessService(core)
        bus_services = [self._access, TraceService(core), TopologyService(core)]
        device_services = [DeviceService(core), IrqService(core)]
        register(self.server, BUS, bus_services, lim.max_message_bytes, gate)
        register(self.server, DEVICES, device_services, lim.max_message_bytes, gate)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable([BUS.full_name, DEVICES.full_name, health.SERVICE_NAME], self.server)
        for target, mutual in ports:
            self.addresses.append(self._listen(target, mutual))
        # After binding (which says first why an address cannot be used), before serving.
        for warning in exposure_warnings(ports, security):
            log.warning(warning)
        await self.server.start()
        if core.metrics is not None:
            self.metrics = MetricsEndpoint(core.metrics)
            try:
                await self.metrics.start(list(self.config.metrics))
            except MetricsListenError as e:
                raise ListenError(str(e)) from None
        await core.devices.start_in_process(core)
        for name, run in self.cpu_runs.items():
            cpu = InServerCpu(core, core.machine.cpus[name], run)
            await cpu.start()
            self.cpus.append(cpu)
        for name in ("", BUS.full_name, DEVICES.full_name):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            machine=core.machine.source,
            addresses=self.addresses,
            auth=security.policy.source if security.policy is not None else None,
            tls=_tls_mode(security),
        )

    @staticmethod
    def _target(address: str) -> str:
        try:
            return parse_address(address)
        except ValueError as e:
            raise ListenError(f"cannot listen on {address}: {e}") from None

    def _listen(self, target: str, mutual: bool) -> str:
        """Listen on ``target``: TCP with TLS when configured (``mutual``: callers present
        certificates); a unix socket in plain text, created with the configured mode (only its
        owner may connect, by default)."""
        assert self.server is not None
        security = self.config.security
        try:
            if target.startswith("unix:"):
                path = target.removeprefix("unix:")
                _remove_stale_socket(path)
                with private_files():
                    self.server.add_insecure_port(target)
                set_socket_mode(path, security.socket_mode)
                return target
            if security.tls is not None:
                port = self.server.add_secure_port(target, server_credentials(security.tls, mutual))
            else:
                port = self.server.add_insecure_port(target)
        except RuntimeError as e:
            raise ListenError(f"cannot listen on {target}: {e} (address in use?)") from None
        host = target.rsplit(":", 1)[0]
        return f"{host}:{port}"

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let those in flight finish (up to ``grace`` seconds)."""
        if self.server is None:
            return
        core = self.core
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        grace = self.config.limits.grace_seconds if grace is None else grace
        # The server stops taking calls at once; the calls in flight get `grace` seconds. Streams
        # that only wait (traces, watches, idle RwStreams) end now; devices stay until the
        # accesses in flight (which may be waiting for them) are done.
        stopped = asyncio.ensure_future(self.server.stop(grace))
        core.stopping.set()
        if self._access is not None:
            self._access.stop_streams()
        try:
            await asyncio.wait_for(core.inflight.idle.wait(), grace)
        except TimeoutError:
            pass
        for cpu in self.cpus:
            await cpu.stop()
        core.devices.end_sessions()
        await stopped
        await core.devices.stop_in_process()
        if self.metrics is not None:
            await self.metrics.stop()
        for address in self.addresses:
            if address.startswith("unix:"):
                _remove_stale_socket(address.removeprefix("unix:"))


def _tls_mode(security: Security) -> str:
    if security.tls is None:
        return "off"
    if security.mtls_listen:
        return "mutual on --mtls-listen ports"
    return "mutual" if security.tls.client_ca is not None else "on"


def _remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


async def run(
    machine: Machine,
    config: ServerConfig,
    listen: list[str],
    on_ready: Callable[[list[str]], None] | None = None,
    cpus: dict[str, CpuRun] | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM, then shut down gracefully; returns the exit status."""
    # Handle signals before announcing the addresses: a supervisor may signal at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bus = BusServer(machine, config, cpus)
    try:
        await bus.start(listen)
    except BaseException:
        await bus.stop(0)
        raise
    _tune_gc()
    if on_ready is not None:
        on_ready(bus.addresses)
    await stop.wait()
    log.info("shutting down", grace_seconds=config.limits.grace_seconds)
    await bus.stop()
    log.info("stopped")
    return 0


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the access path. Everything built at start-up
    (the machine, its regions and views) lives as long as the server: freeze it so full
    collections do not rescan it, and collect the young generation less often (a batch of
    1,000 accesses allocates several thousand short-lived objects, almost none cyclic)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve_forever(
    machine: Machine,
    config: ServerConfig,
    listen: list[str],
    on_ready: Callable[[list[str]], None] | None = None,
    cpus: dict[str, CpuRun] | None = None,
) -> int:
    """``run`` on uvloop where it is available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - e.g. Windows
        return asyncio.run(run(machine, config, listen, on_ready, cpus))
    return uvloop.run(run(machine, config, listen, on_ready, cpus))
