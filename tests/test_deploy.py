"""docker-compose.yml and the Dockerfile are consistent with the code (no Docker engine runs
here, so this checks what can be checked without one: every container's command is a valid
`mmiobus` command line, the machine they share loads, and each device claims a region declared
for it)."""

from __future__ import annotations

from pathlib import Path

import yaml
from mmiobus.cli.main import build_parser
from mmiobus.machine import Machine
from mmiobus.machine.schema import MmioSpec

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _args(service: dict) -> list[str]:
    return [str(a) for a in service["command"]]


def test_every_service_is_built_from_the_one_image():
    images = {s.get("image") for s in SERVICES.values()}
    assert images == {"mmiobus:latest"}
    assert all(s.get("build") == "." for s in SERVICES.values())


def test_every_mmiobus_command_parses():
    parser = build_parser()
    for name, service in SERVICES.items():
        if service.get("entrypoint"):
            continue  # the bench runs bench/run.py
        parser.parse_args(_args(service))  # exits (SystemExit) on a bad command line
        assert name


def test_the_bus_serves_the_machine_file_and_it_loads():
    args = build_parser().parse_args(_args(SERVICES["bus"]))
    path = ROOT / Path(args.config).relative_to("/opt/mmiobus")
    machine = Machine.from_file(path)
    assert machine.address_space("memory")


def test_each_device_claims_a_region_declared_for_it():
    bus = build_parser().parse_args(_args(SERVICES["bus"]))
    machine = Machine.from_file(ROOT / Path(bus.config).relative_to("/opt/mmiobus"))
    for name, service in SERVICES.items():
        args = _args(service)
        if args[:2] != ["device", "run"]:
            continue
        parsed = build_parser().parse_args(args)
        for region in parsed.claim:
            spec = machine.declared[region].spec
            assert isinstance(spec, MmioSpec)
            assert spec.device == (parsed.name or parsed.claim[0]), name


def test_device_classes_exist():
    from mmiobus.devices.loading import load_device_class

    for service in SERVICES.values():
        args = _args(service)
        if args[:2] == ["device", "run"]:
            assert load_device_class(args[2])


def test_dockerfile_copies_what_exists():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
