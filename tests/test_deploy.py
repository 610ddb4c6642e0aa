"""docker-compose.yml and the Dockerfile are consistent with the code (no Docker engine runs
here, so this checks what can be checked without one: every container's command is a valid
`mmiobus` command line, the machine they share loads, each device claims a region declared
for it, the benchmark client talks to the bus, and the build context holds what the image needs
and not a checkout's environment)."""

from __future__ import annotations

import fnmatch
import importlib.util
import subprocess
import sys
import tomllib
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


def test_the_bench_container_benchmarks_through_the_bus():
    """The compose file's benchmark client reads and writes through the bus container (not a
    server of its own): bench/client.py, pointed at bus:7170."""
    bench = SERVICES["bench"]
    assert bench["entrypoint"] == ["python", "bench/client.py"]
    args = _bench_client().build_parser().parse_args(_args(bench))
    assert args.server == "bus:7170"
    assert bench["depends_on"]["bus"]["condition"] == "service_healthy"


def test_the_bench_client_prints_its_table_against_a_running_bus(machine_server):
    """bench/client.py against a real server (on the compose file's machine): exit 0 and a
    table row per measurement."""
    server = machine_server(ROOT / "deploy" / "machine.yaml")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "client.py"), "--server", server.tcp,
         "--seconds", "0.05"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for row in ("Rw read", "Rw write", "RwStream", "RwBatch", "load 1 MiB", "dump 1 MiB"):
        assert row in out.stdout


def test_the_bench_client_says_in_one_line_when_the_bus_is_away():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "client.py"), "--server", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    [line] = out.stderr.splitlines()
    assert "no mmiobus server answers at 127.0.0.1:1" in line


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _ignored(path: str) -> bool:
    return any(
        fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
        for p in _dockerignore()
    )


def test_dockerignore_leaves_out_the_checkouts_environment_and_history():
    for path in (".venv", ".git", ".mypy_cache", ".pytest_cache", "mmiobus.egg-info",
                 "__pycache__", "tests"):  # fmt: skip
        assert _ignored(path), path


def test_dockerignore_keeps_what_the_dockerfile_copies():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert not _ignored(src), src


def test_the_dockerfile_copies_every_package_folder():
    """Every folder pyproject.toml maps a package to is in the image (pip install . needs
    them all)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = {d.split("/")[0] for d in project["tool"]["setuptools"]["package-dir"].values()}
    copied = {
        src
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for src in line.split()[1:-1]
    }
    assert folders <= copied, folders - copied


def _bench_client():
    spec = importlib.util.spec_from_file_location("bench_client", ROOT / "bench" / "client.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_pyproject_lists_every_package():
    """A non-editable install (the image's `pip install .`) has only the packages listed: each
    folder with an ``__init__.py`` under a mapped one must be listed too."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for package, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found <= listed, sorted(found - listed)
