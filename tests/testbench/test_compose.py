"""`mmiobus compose`: a bench as a Compose file that conforms to the Compose specification's
schema (tests/fixtures/compose, with its source and licence), and the shipped
docker-compose.yml is what deploy/bench.yaml generates."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from mmiobus.testbench.compose import compose_file
from mmiobus.testbench.load import load_bench
from support.servers import MMIOBUS

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "compose" / "compose-spec.json").read_text())
UART = "mmiobus.devices.models.uart16550:Uart16550"


def _conforms(compose: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(compose)


def _compose(tmp_path: Path, text: str, **files: str) -> dict:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "bench.yaml").write_text(text)
    out = tmp_path / "out" / "compose.yaml"
    out.parent.mkdir()
    return compose_file(load_bench(tmp_path / "bench.yaml"), out)


def test_the_shipped_compose_file_is_generated_from_the_deploy_bench():
    out = subprocess.run(
        [MMIOBUS, "compose", "deploy/bench.yaml", "-o", "docker-compose.yml", "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_the_shipped_compose_file_conforms_to_the_compose_specification():
    _conforms(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_the_schema_is_strict_enough_to_refuse_a_wrong_file():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose["services"]["bus"]["restart_policy"] = "always"  # not a service key
    with pytest.raises(jsonschema.ValidationError):
        _conforms(compose)


def test_every_example_bench_makes_a_conforming_compose_file(tmp_path):
    for bench in sorted((ROOT / "examples").rglob("*.yaml")):
        if "processes" in bench.read_text() or bench.name == "bench.yaml":
            _conforms(compose_file(load_bench(bench), tmp_path / "compose.yaml"))


def test_one_service_per_process_each_after_the_bus_is_healthy(tmp_path):
    compose = _compose(
        tmp_path,
        f"""
processes:
  uart0: {{kind: device, class: {UART}, claim: uart0, args: {{output: "file:console.txt"}}}}
  probe: {{kind: command, program: [python, probe.py], args: ["{{server}}"]}}
""",
    )
    _conforms(compose)
    services = compose["services"]
    assert list(services) == ["bus", "uart0", "probe"]
    assert {s["image"] for s in services.values()} == {"mmiobus:latest"}
    assert "healthcheck" in services["bus"]
    uart, probe = services["uart0"], services["probe"]
    assert uart["depends_on"] == {"bus": {"condition": "service_healthy"}}
    assert "healthcheck" in uart  # healthy once the bus lists it attached
    assert probe["depends_on"]["uart0"] == {"condition": "service_healthy"}  # the wave before
    assert probe["entrypoint"] == ["python", "probe.py"] and probe["command"] == ["bus:7170"]
    assert uart["command"][:3] == ["device", "run", UART]
    assert "--server" in uart["command"] and "bus:7170" in uart["command"]
    # The bench's folder is mounted where the services run: relative paths work as under `up`.
    assert uart["volumes"] == ["..:/bench"] and uart["working_dir"] == "/bench"
    assert uart["restart"] == "unless-stopped" and probe["restart"] == "no"


def test_credentials_become_compose_secrets(tmp_path):
    compose = _compose(tmp_path, "credentials: {token: {file: secrets/bus.token}}\n")
    _conforms(compose)
    assert compose["secrets"] == {"mmiobus-token": {"file": "../secrets/bus.token"}}
    assert compose["services"]["bus"]["secrets"] == ["mmiobus-token"]
    from_env = _compose(tmp_path / "out", "credentials: {token: {env: BUS_TOKEN}}\n")
    assert from_env["secrets"] == {"mmiobus-token": {"environment": "BUS_TOKEN"}}


def test_devices_the_server_runs_travel_as_a_config(tmp_path):
    compose = _compose(
        tmp_path, f"bus:\n  devices:\n    uart0: {{class: {UART}, args: {{output: none}}}}\n"
    )
    _conforms(compose)
    machine = yaml.safe_load(compose["configs"]["bench-machine"]["content"])
    uart = next(r for r in machine["regions"][0]["subregions"] if r["name"] == "uart0")
    assert uart["device"] == {"class": UART, "args": {"output": "none"}}
    bus = compose["services"]["bus"]
    assert bus["configs"] == [{"source": "bench-machine", "target": "/etc/mmiobus/machine.yaml"}]
    assert bus["command"][1:3] == ["--config", "/etc/mmiobus/machine.yaml"]


def test_compose_check_says_when_the_file_is_stale(tmp_path):
    bench = tmp_path / "bench.yaml"
    bench.write_text("bus: {machine: default}\n")
    target = tmp_path / "compose.yaml"
    args = [MMIOBUS, "compose", str(bench), "-o", str(target)]
    assert subprocess.run(args, capture_output=True, timeout=60).returncode == 0
    target.write_text(target.read_text() + "# edited by hand\n")
    out = subprocess.run([*args, "--check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "is not what" in out.stderr and "run `mmiobus compose" in out.stderr


def test_peers_run_as_their_commands_and_the_image_gets_what_they_need(tmp_path):
    """QEMU, RTL and PCI-proxy processes: their `mmiobus` command lines (QEMU's own options
    last), and the build arguments that put QEMU, Icarus Verilog and the rtl extra in the
    image."""
    (tmp_path / "block.v").write_text("module block; endmodule\n")
    compose = _compose(
        tmp_path,
        """
compose: {build: .}
processes:
  uart0: {kind: qemu, arch: aarch64, machine: virt, claim: "uart0=0x9000000",
          irq_controller: arm_gic, irqs: {1: irq}, serial: "file:console.txt",
          qemu_args: [-m, 64M]}
  block: {kind: rtl, sources: [block.v], top: block, at: "0x20000000:4K", irqs: [irq]}
  pc: {kind: pci-proxy, bars: ["0=0x10000000:16"], vendor: 0x1234,
       qemu_args: [-machine, pc, -nographic]}
""",
    )
    _conforms(compose)
    services = compose["services"]
    qemu = services["uart0"]["command"]
    assert qemu[:2] == ["device", "qemu"] and qemu[-3:] == ["--", "-m", "64M"]
    for pair in (["--claim", "uart0=0x9000000"], ["--irq", "1=irq"],
                 ["--serial", "file:/bench/console.txt"], ["--irq-controller", "arm_gic"]):  # fmt: skip
        assert any(qemu[i : i + 2] == pair for i in range(len(qemu))), (pair, qemu)
    rtl = services["block"]["command"]
    assert rtl[:3] == ["device", "rtl", "/bench/block.v"] and "--top" in rtl
    proxy = services["pc"]["command"]
    assert proxy[0] == "pci-proxy" and proxy[-4:] == ["--", "-machine", "pc", "-nographic"]
    assert "healthcheck" in services["uart0"] and "healthcheck" in services["block"]
    build = services["bus"]["build"]
    assert build["args"] == {
        "DEBIAN_PACKAGES": "iverilog qemu-system-arm qemu-system-x86",
        "EXTRAS": "rtl",
    }
