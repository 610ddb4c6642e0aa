"""A bench as a Compose file (``mmiobus compose``): one image, one service per process plus the
bus, each process started once the bus answers its health check (and once what it comes
``after`` has started: devices once they are attached), credentials as Compose secrets.

The bench's folder is in the containers at ``compose.workdir``: bind-mounted there (and the
services' working folder) with ``mount: true``, or already in the image with ``mount: false``.
Paths the bench gives for the bus and its processes (machine, firmware, recordings) are written
from there. Expectations are ``mmiobus up``'s: Compose has nothing to check them with.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

import yaml

from .commands import machine_with_devices, process_command, serve_command
from .credentials import compose_credentials
from .load import Bench
from .processes import KINDS, CommandProcess, Site

MACHINE_IN_CONTAINER = "/etc/mmiobus/machine.yaml"

# The bus answers gRPC health checks: SERVING is healthy.
_BUS_HEALTH = (
    "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; "
    "sys.exit(g.HealthStub(grpc.insecure_channel('127.0.0.1:{port}')).Check("
    "h.HealthCheckRequest(), timeout=2).status != h.HealthCheckResponse.SERVING)"
)
# A device is healthy once the bus lists it attached.
_DEVICE_HEALTH = (
    "import sys; from mmiobus.client import Bus; "
    "sys.exit(all(d.name != {name!r} for d in Bus({server!r}, timeout=2).devices()))"
)


def compose_file(bench: Bench, out: Path) -> dict[str, Any]:
    """The Compose file for ``bench``, to be written at ``out`` (relative paths in it start
    there)."""
    settings = bench.spec.compose
    server = f"bus:{settings.port}"
    workdir = settings.workdir

    def path(p: str) -> str:
        return p if posixpath.isabs(p) else posixpath.normpath(posixpath.join(workdir, p))

    site = Site(server, path)
    base: dict[str, Any] = {"image": settings.image}
    if settings.build is not None:
        context = _relative(bench.resolve(settings.build), out.parent)
        base["build"] = (
            {"context": context, "args": args} if (args := _image_args(bench)) else context
        )
    if settings.mount:
        base["volumes"] = [f"{_relative(bench.folder, out.parent)}:{workdir}"]
        base["working_dir"] = workdir
    base["environment"] = {"MMIOBUS_SERVER": server}
    top: dict[str, Any] = {}
    if settings.name is not None:
        top["name"] = settings.name
    services: dict[str, Any] = {}
    top["services"] = services
    credentials = compose_credentials(bench, lambda p: _relative(p, out.parent))
    if credentials.secrets:
        top["secrets"] = credentials.secrets

    machine = machine_with_devices(bench, Path(workdir))
    bus = bench.spec.bus
    command = serve_command(
        bench,
        [f"0.0.0.0:{settings.port}"],
        machine_file=MACHINE_IN_CONTAINER if machine is not None else None,
        log_format="json",
        site=site,
    )
    argv = [*command.argv, *credentials.bus_options]
    services["bus"] = _service(base, argv, True, bus.env, bus.compose)
    services["bus"]["healthcheck"] = {
        "test": ["CMD", "python", "-c", _BUS_HEALTH.format(port=settings.port)],
        "interval": "5s",
        "timeout": "3s",
        "retries": 5,
    }
    if machine is not None:
        top["configs"] = {"bench-machine": {"content": machine}}
        services["bus"]["configs"] = [{"source": "bench-machine", "target": MACHINE_IN_CONTAINER}]

    before: dict[str, list[str]] = {}  # what each process waits for besides its `after`
    for previous, wave in zip([[], *bench.waves], bench.waves, strict=False):
        for name in wave:
            before[name] = previous
    for name, p in bench.spec.processes.items():
        kind = KINDS[p.kind]
        c = process_command(bench, name, site, log_format="json")
        env = {**c.env, **credentials.env.get(name, {})}
        service = _service(base, c.argv, kind.lasting, env, {})
        if not kind.mmiobus:
            assert isinstance(p, CommandProcess)
            service["command"] = c.argv[len(p.program) :]
            service = _entrypoint(service, c.argv[: len(p.program)])
        depends = {"bus": {"condition": "service_healthy"}}
        for other in [*before[name], *p.after]:
            healthy = KINDS[bench.spec.processes[other].kind].ready == "line"
            depends[other] = {"condition": "service_healthy" if healthy else "service_started"}
        service["depends_on"] = depends
        if kind.ready == "line":  # a device: healthy once attached
            device = getattr(p, "name", None) or name
            check = _DEVICE_HEALTH.format(name=device, server=server)
            service["healthcheck"] = {
                "test": ["CMD", "python", "-c", check],
                "interval": "2s",
                "timeout": "3s",
                "retries": 15,
            }
        if p.workdir is not None:
            service["working_dir"] = path(p.workdir)
        service.update(p.compose)
        services[name] = service
    for name, used in credentials.uses.items():
        services[name]["secrets"] = used
    return top


def _image_args(bench: Bench) -> dict[str, str]:
    """The Dockerfile's build arguments the bench's processes need: Debian packages (QEMU, Icarus
    Verilog) and mmiobus extras."""
    packages: set[str] = set()
    extras: set[str] = set()
    for p in bench.spec.processes.values():
        kind = KINDS[p.kind]
        packages.update(kind.packages(p))
        extras.update(kind.extras)
    args = {}
    if packages:
        args["DEBIAN_PACKAGES"] = " ".join(sorted(packages))
    if extras:
        args["EXTRAS"] = ",".join(sorted(extras))
    return args


def _service(
    base: dict[str, Any], argv: list[str], lasting: bool, env: dict[str, str], extra: dict[str, Any]
) -> dict[str, Any]:
    service: dict[str, Any] = {"image": base["image"]}
    if "build" in base:
        service["build"] = base["build"]
    service["command"] = argv
    for key in ("working_dir", "volumes"):
        if key in base:
            service[key] = base[key]
    service["environment"] = {**base["environment"], **env}
    service["restart"] = "unless-stopped" if lasting else "no"
    service.update(extra)
    return service


def _entrypoint(service: dict[str, Any], program: list[str]) -> dict[str, Any]:
    """``service`` running ``program`` instead of the image's ``mmiobus``, said before its
    ``command``."""
    out: dict[str, Any] = {}
    for key, value in service.items():
        if key == "command":
            out["entrypoint"] = program
        out[key] = value
    return out


def _relative(target: Path, start: Path) -> str:
    rel = os.path.relpath(target, start.resolve())
    return "." if rel == "." else rel if rel.startswith(".") else f"./{rel}"


class _Dumper(yaml.SafeDumper):
    """Compose YAML as people write it: no anchors, short lists of words on one line."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    words = all(isinstance(x, (str, int)) for x in data)
    flow = words and sum(len(str(x)) + 4 for x in data) < 72
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)


def to_yaml(compose: dict[str, Any], bench: Bench, header: str) -> str:
    """The Compose file's text, with ``header`` (and the bench's comment) on top."""
    lines = [f"# {ln}".rstrip() for ln in header.splitlines()]
    comment = bench.spec.compose.comment
    if comment:
        lines += [f"# {ln}".rstrip() for ln in comment.strip().splitlines()]
    body = yaml.dump(compose, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return "\n".join(lines) + "\n" + body
