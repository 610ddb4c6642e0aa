"""Bench files: the format, its JSON Schema, the order processes start in, and every mistake
said in one line that points at the file, line, column and field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from mmiobus.testbench.load import BenchError, load_bench
from mmiobus.testbench.processes import KINDS
from mmiobus.testbench.schema import json_schema
from support.servers import MMIOBUS

ROOT = Path(__file__).resolve().parents[2]
BENCHES = [ROOT / "deploy" / "bench.yaml", *sorted((ROOT / "examples").rglob("bench*.yaml")),
           *sorted((ROOT / "examples" / "benches").glob("*.yaml"))]  # fmt: skip
UART = "mmiobus.devices.models.uart16550:Uart16550"


def _bench(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(BenchError) as e:
        load_bench(_bench(tmp_path, text))
    return str(e.value)


def test_an_unknown_field_is_one_line_at_its_place(tmp_path):
    text = f"processes:\n  uart0:\n    kind: device\n    class: {UART}\n    clam: uart0\n"
    [line] = _error(tmp_path, text).splitlines()
    assert line == f"{tmp_path / 'bench.yaml'}:5:11: processes.uart0.clam: unknown field"


def test_an_unknown_process_kind_names_the_kinds_there_are(tmp_path):
    [line] = _error(tmp_path, "processes:\n  q0:\n    kind: fpga\n").splitlines()
    assert line.endswith(":3:11: processes.q0.kind: kind 'fpga' is not one of "
                         + ", ".join(KINDS))  # fmt: skip


def test_a_dependency_on_a_process_that_does_not_exist(tmp_path):
    text = f"processes:\n  uart0: {{kind: device, class: {UART}, claim: uart0, after: [cpu9]}}\n"
    [line] = _error(tmp_path, text).splitlines()
    assert "processes.uart0.after[0]: there is no process 'cpu9' (the bench's: uart0)" in line


def test_processes_waiting_for_each_other_are_refused(tmp_path):
    text = ("processes:\n"
            "  a: {kind: command, program: [sleep, '1'], after: [b]}\n"
            "  b: {kind: command, program: [sleep, '1'], after: [a]}\n")  # fmt: skip
    [line] = _error(tmp_path, text).splitlines()
    assert ":2:" in line and "the processes wait for each other: a -> b -> a" in line


def test_a_claim_of_a_region_the_machine_lacks(tmp_path):
    text = f"processes:\n  uart9:\n    kind: device\n    class: {UART}\n    claim: [uart9]\n"
    [line] = _error(tmp_path, text).splitlines()
    assert ":5:13: processes.uart9.claim[0]: there is no region 'uart9'" in line


def test_a_claim_of_a_region_that_belongs_to_another_device(tmp_path):
    text = f"processes:\n  console:\n    kind: device\n    class: {UART}\n    claim: uart0\n"
    [line] = _error(tmp_path, text).splitlines()
    assert "region 'uart0' belongs to device 'uart0', not 'console'" in line


def test_an_unknown_built_in_machine(tmp_path):
    [line] = _error(tmp_path, "bus: {machine: pdp11}\n").splitlines()
    assert ":1:16: bus.machine: no built-in machine 'pdp11'" in line


def test_the_bus_is_not_a_process_name(tmp_path):
    [line] = _error(
        tmp_path, "processes:\n  bus: {kind: command, program: [sleep, '1']}\n"
    ).splitlines()
    assert "'bus' is the bus's own name" in line


def test_yaml_that_is_not_a_mapping(tmp_path):
    [line] = _error(tmp_path, "- just\n- a list\n").splitlines()
    assert "a bench is a mapping" in line


def test_processes_start_by_kind_then_as_after_says(tmp_path):
    text = (
        "processes:\n"
        "  late: {kind: command, program: [sleep, '1'], after: [cpu0]}\n"
        "  cpu0: {kind: cpu}\n"
        f"  uart0: {{kind: device, class: {UART}, claim: uart0, after: [rec]}}\n"
        "  rec: {kind: trace, out: t.jsonl}\n"
        "bus: {machine: riscv-virt}\n"
    )
    bench = load_bench(_bench(tmp_path, text))
    assert bench.waves == [["rec"], ["uart0"], ["cpu0"], ["late"]]


def test_every_shipped_bench_loads_and_its_schema_accepts_it():
    schema = json.loads(json_schema())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert len(BENCHES) >= 3
    for path in BENCHES:
        load_bench(path)
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_the_schema_refuses_what_the_loader_refuses():
    schema = json.loads(json_schema())
    bad = {"processes": {"x": {"kind": "device", "class": "a:B", "clam": "x"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_the_published_schema_file_is_what_the_command_prints():
    out = subprocess.run([MMIOBUS, "schema", "bench"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["title"] == "mmiobus bench"
    assert (ROOT / "examples" / "benches" / "bench.schema.json").read_text() == out.stdout


def test_a_bad_bench_fails_mmiobus_up_in_one_line(tmp_path):
    path = _bench(
        tmp_path, "bus: {machine: default, listen: [127.0.0.1:0]}\nexpect: {tmeout: 3s}\n"
    )
    out = subprocess.run([MMIOBUS, "up", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr == f"mmiobus up: error: {path}:2:18: expect.tmeout: unknown field\n"


def test_a_machine_file_that_is_not_there(tmp_path):
    [line] = _error(tmp_path, "bus: {config: missing.yaml}\n").splitlines()
    assert f"bus.config: there is no file {tmp_path / 'missing.yaml'}" in line
