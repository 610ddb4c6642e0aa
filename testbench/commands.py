"""A bench as command lines: the bus's ``mmiobus serve`` and each process's, with their
environment and credentials. ``mmiobus up``, ``mmiobus compose`` and the pytest plugin all start
processes from these, so a bench runs the same way everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .load import Bench
from .processes import KINDS, SERVER, Kind, Site


@dataclass
class Command:
    """One process to start: its argv (``mmiobus ...`` or a program), environment additions
    and network namespace."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    kind: Kind | None = None  # None for the bus
    workdir: str | None = None  # relative to the bench's folder

    @property
    def lasting(self) -> bool:
        return self.kind is None or self.kind.lasting


def serve_command(
    bench: Bench,
    listen: list[str],
    *,
    machine_file: str | None = None,
    metrics: list[str] | None = None,
    log_format: str = "console",
    site: Site | None = None,
) -> Command:
    """The bus: ``mmiobus serve`` on the bench's machine (``machine_file`` instead, when the
    bench runs devices in the server and the caller wrote the machine with them), listening on
    ``listen``, with metrics at ``metrics`` besides the bench's own."""
    bus = bench.spec.bus
    path = (site or Site("")).path
    argv = ["serve"]
    if machine_file is not None:
        argv += ["--config", machine_file]
    elif bus.config is not None:
        argv += ["--config", path(bus.config)]
    elif bus.machine is not None:
        argv += ["--machine", bus.machine]
    for address in listen:
        argv += ["--listen", address]
    for address in [*bus.metrics, *(metrics or [])]:
        argv += ["--metrics", address]
    if bus.cpu is not None:
        argv += ["--cpu", bus.cpu.name]
        if bus.cpu.firmware is not None:
            argv += ["--firmware", path(bus.cpu.firmware)]
        if bus.cpu.payload is not None:
            argv += ["--payload", path(bus.cpu.payload)]
        if bus.cpu.until is not None:
            argv += ["--until", hex(bus.cpu.until)]
    argv += ["--log-format", log_format, *bus.options]
    return Command("bus", argv, dict(bus.env), bus.host)


def process_command(bench: Bench, name: str, site: Site, log_format: str = "console") -> Command:
    """Process ``name`` of the bench, connecting to the bus at ``site.server`` unless it says
    where itself."""
    p = bench.spec.processes[name]
    kind = KINDS[p.kind]
    if p.server is not None:
        site = Site(p.server, site.path)
    argv = kind.argv(p, name, site)
    if kind.logs:
        argv += ["--log-format", log_format]
    argv += p.options
    if kind.tail is not None:
        argv += kind.tail(p)
    env = {key: value.replace(SERVER, site.server) for key, value in p.env.items()}
    return Command(name, argv, env, p.host, kind, p.workdir)


def machine_with_devices(bench: Bench, base: Path | None = None) -> str | None:
    """The bench's machine description with the devices ``bus.devices`` runs in the server,
    as YAML text (None when it names none). Relative ``file:`` paths in it are made absolute
    from ``base`` (default: the description's folder), so that the text works from anywhere."""
    from mmiobus.machine.builtin import builtin_text

    bus = bench.spec.bus
    if not bus.devices:
        return None
    if bus.config is not None:
        source = bench.resolve(bus.config)
        text, folder = source.read_text(), source.parent
    else:
        text, folder = builtin_text(bus.machine or "default"), Path(".")
    spec = yaml.safe_load(text)
    wanted = dict(bus.devices)

    def walk(regions: list[dict[str, Any]]) -> None:
        for region in regions:
            key = region.get("id", region.get("name"))
            if key in wanted:
                device = wanted.pop(key)
                region["device"] = device.model_dump(by_alias=True, exclude_none=True)
            if isinstance(region.get("file"), str) and not os.path.isabs(region["file"]):
                region["file"] = str((base or folder) / region["file"])
            walk(region.get("subregions", []))

    walk(spec.get("regions", []))
    return yaml.safe_dump(spec, sort_keys=False)
