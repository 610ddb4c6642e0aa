"""A server with the device processes that serve its regions and a client on it: what the
``machine_rig`` fixture hands to a test module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mmiobus.client import Bus

from support.devices import DeviceProcess, start_device
from support.servers import ServerFactory, ServerProcess

# (target, region, extra `mmiobus device run` arguments): one device process claiming REGION.
DeviceSpec = tuple[str, str, list[str]]


@dataclass
class Rig:
    """A server, its device processes (by region or name), and a blocking client. ``extra``
    holds what a test module wants to keep beside them (folders, ports)."""

    server: ServerProcess
    devices: dict[str, DeviceProcess]
    bus: Bus
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.server.tcp

    @cached_property
    def first_space(self) -> str:
        """The id of the machine's first address space (what an empty address space means)."""
        return self.bus.topology(flat_views=False).address_spaces[0].id

    def start(self, target: str, region: str, *args: str, name: str | None = None) -> Any:
        """One more device process claiming ``region`` (stopped with the rig)."""
        dev = start_device(target, self.server.tcp, "--claim", region, *args, name=name)
        self.devices[name or region] = dev
        return dev

    def logs(self) -> str:
        parts = [f"--- server\n{self.server.log()}"]
        parts += [f"--- device {n}\n{d.log()}" for n, d in self.devices.items()]
        return "\n".join(parts)

    def close(self) -> None:
        """Close the client and stop the device processes (the server stays up)."""
        self.bus.close()
        for dev in self.devices.values():
            dev.stop()


class RigFactory:
    """Starts rigs on servers from ``servers`` and closes them all at ``close()``; the servers
    stop with their factory."""

    def __init__(self, servers: ServerFactory) -> None:
        self._servers = servers
        self._rigs: list[Rig] = []

    def __call__(
        self,
        machine: str | Path,
        devices: Sequence[DeviceSpec] = (),
        *flags: str,
        files: dict[str, bytes] | None = None,
    ) -> Rig:
        """A server on ``machine`` (as ``ServerFactory`` takes it) with ``flags``, and one device
        process per ``(target, region, args)`` claiming ``region``, all started at once; returns
        once every device serves."""
        server = self._servers(machine, *flags, files=files)
        procs: dict[str, DeviceProcess] = {}
        try:
            for target, region, args in devices:
                procs[region] = start_device(
                    target, server.tcp, "--claim", region, *args, wait=False
                )
            for proc in procs.values():
                proc.wait_serving()
        except BaseException:
            for proc in procs.values():
                proc.stop()
            raise
        rig = Rig(server, procs, Bus(server.tcp))
        self._rigs.append(rig)
        return rig

    def close(self) -> None:
        for rig in self._rigs:
            rig.close()
        self._rigs.clear()
