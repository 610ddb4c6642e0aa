"""`mmiobus serve`: one machine on one gRPC server, on TCP and/or unix sockets."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from mmiobus.machine import Machine
from mmiobus.v1 import bus_pb2, devices_pb2

from .config import Limits
from .irq import IrqRegistry
from .services.bus import BusService
from .services.devices import DevicesService
from .services.registry import register

log = structlog.get_logger("mmiobus.server")

DEFAULT_LISTEN = "127.0.0.1:7170"


def version() -> str:
    try:
        return metadata.version("mmiobus")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


class ListenError(Exception):
    """The server could not listen where it was asked to."""


@dataclass
class BusServer:
    """A running server: the gRPC server, the services, and where it listens."""

    machine: Machine
    limits: Limits = field(default_factory=Limits)
    device_deadline_ms: float = 1000.0
    device_tokens: frozenset[str] = frozenset()
    trace_queue: int = 10_000
    trace_max_data: int = 4096
    server: grpc.aio.Server | None = None
    bus: BusService | None = None
    devices: DevicesService | None = None
    irqs: IrqRegistry = field(default_factory=IrqRegistry)
    health: health.aio.HealthServicer | None = None
    addresses: list[str] = field(default_factory=list)

    async def start(self, listen: list[str]) -> None:
        lim = self.limits
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
        self.bus = BusService(self.machine, lim, version())
        self.bus.trace_defaults.queue_capacity = self.trace_queue
        self.bus.trace_defaults.max_data_limit = self.trace_max_data
        register(
            self.bus,
            self.server,
            bus_pb2.DESCRIPTOR.services_by_name["Bus"],
            max_message_bytes=lim.max_message_bytes,
        )
        self.devices = DevicesService(
            self.machine,
            self.irqs,
            self.bus.refresh_spaces,
            version(),
            default_deadline_ms=self.device_deadline_ms,
            tokens=self.device_tokens,
            max_access_bytes=lim.max_access_bytes,
        )
        self.bus.devices = self.devices.served
        self.bus.pipeline_key = self.devices.pipeline_key
        self.devices.tracer = self.bus
        register(
            self.devices,
            self.server,
            devices_pb2.DESCRIPTOR.services_by_name["Devices"],
            max_message_bytes=lim.max_message_bytes,
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [
            bus_pb2.DESCRIPTOR.services_by_name["Bus"].full_name,
            devices_pb2.DESCRIPTOR.services_by_name["Devices"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ]
        reflection.enable_server_reflection(names, self.server)
        for address in listen or [DEFAULT_LISTEN]:
            self.addresses.append(self._listen(address))
        await self.server.start()
        await self.devices.start_local_devices()
        for name in ("", names[0], names[1]):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", machine=self.machine.source, addresses=self.addresses)

    def _listen(self, address: str) -> str:
        assert self.server is not None
        if address.startswith("unix:"):
            path = address.removeprefix("unix://").removeprefix("unix:")
            if not path.startswith("/"):
                path = str(Path(path).resolve())
            _remove_stale_socket(path)
            target = f"unix:{path}"
        else:
            target = address
        try:
            port = self.server.add_insecure_port(target)
        except RuntimeError as e:
            raise ListenError(f"cannot listen on {address}: {e} (address in use?)") from None
        if not target.startswith("unix:"):
            host = target.rsplit(":", 1)[0]
            return f"{host}:{port}"
        return target

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let those in flight finish (up to ``grace`` seconds)."""
        if self.server is None:
            return
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        grace = self.limits.grace_seconds if grace is None else grace
        # The server stops taking calls at once; the calls in flight get `grace` seconds. Streams
        # that only wait (traces, watches, idle RwStreams) end now; devices stay until the
        # accesses in flight (which may be waiting for them) are done.
        stopped = asyncio.ensure_future(self.server.stop(grace))
        if self.bus is not None:
            self.bus.stop_streams()
            try:
                await asyncio.wait_for(self.bus.idle.wait(), grace)
            except TimeoutError:
                pass
        if self.devices is not None:
            self.devices.end_sessions()
        await stopped
        if self.devices is not None:
            await self.devices.stop_local_devices()
        for address in self.addresses:
            if address.startswith("unix:"):
                _remove_stale_socket(address.removeprefix("unix:"))


def _remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


async def run(
    machine: Machine,
    listen: list[str],
    limits: Limits,
    on_ready: Callable[[list[str]], None] | None = None,
    **options: object,
) -> int:
    """Serve until SIGINT or SIGTERM, then shut down gracefully; returns the exit status."""
    # Handle signals before announcing the addresses: a supervisor may signal at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bus = BusServer(machine, limits, **options)  # type: ignore[arg-type]
    await bus.start(listen)
    _tune_gc()
    if on_ready is not None:
        on_ready(bus.addresses)
    await stop.wait()
    log.info("shutting down", grace_seconds=limits.grace_seconds)
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


def run_forever(
    machine: Machine,
    listen: list[str],
    limits: Limits,
    on_ready: Callable[[list[str]], None] | None = None,
    **options: object,
) -> int:
    """``run`` on uvloop where it is available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - e.g. Windows
        return asyncio.run(run(machine, listen, limits, on_ready, **options))
    return uvloop.run(run(machine, listen, limits, on_ready, **options))
