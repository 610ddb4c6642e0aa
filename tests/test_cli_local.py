"""The command line's local commands, run as a user runs them: the installed `mmiobus` script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.mtree_compare import diff, flat_blocks, split_dump

MMIOBUS = str(Path(sys.executable).with_name("mmiobus"))
FIXTURES = Path(__file__).parent / "fixtures" / "qemu"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MMIOBUS, *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_mtree_f_prints_the_default_machines_flat_view():
    out = run("mtree", "-f")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('FlatView #0\n AS "memory", root: system\n')
    assert "(prio 0, ram): ram\n" in out.stdout


def test_mtree_prints_a_file_as_qemu_would(tmp_path):
    machine = tmp_path / "m.yaml"
    machine.write_text(
        "address_spaces: [{name: memory, root: system}]\n"
        "regions:\n"
        "  - name: system\n    kind: container\n    size: 2**64\n    subregions:\n"
        "      - {name: lo, kind: alias, target: pc.ram, size: 0x1000}\n"
        "      - {name: off, kind: mmio, addr: 0x2000, size: 0x10, enabled: false}\n"
        "  - {name: pc.ram, kind: ram, size: 0x2000}\n"
    )
    tree = run("mtree", str(machine)).stdout
    assert tree == (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000000000-0000000000000fff (prio 0, ram): alias lo @pc.ram "
        "0000000000000000-0000000000000fff\n"
        "\n"
        "memory-region: pc.ram\n"
        "  0000000000000000-0000000000001fff (prio 0, ram): pc.ram\n"
        "\n"
    )
    assert "off [disabled]" in run("mtree", "-D", str(machine)).stdout


def test_import_qemu_then_mtree_f_reproduces_qemus_flat_view(tmp_path):
    dump = FIXTURES / "x86_64-q35.txt"
    out_file = tmp_path / "q35.yaml"
    imported = run("import-qemu", str(dump), "-o", str(out_file))
    assert imported.returncode == 0, imported.stderr
    flat = run("mtree", "-f", str(out_file))
    assert flat.returncode == 0, flat.stderr
    expected = split_dump(dump.read_text())[1]
    assert diff(flat_blocks(expected), flat_blocks(flat.stdout)) == ""


def test_import_qemu_reads_standard_input():
    out = run("import-qemu", "-", stdin=(FIXTURES / "aarch64-virt.txt").read_text())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# Imported from QEMU")
    assert "{name: virt.flash0, kind: romd" in out.stdout


def test_schema_prints_json_schema():
    out = run("schema")
    assert json.loads(out.stdout)["title"] == "mmiobus machine description"


def test_bad_description_is_one_error_line_per_problem_and_exit_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions:\n  - {name: a, kind: ram, size: lots}\n")
    out = run("mtree", str(bad))
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"mmiobus mtree: error: {bad}:2:32: regions[0].size: 'lots' is not a size (use an "
        'integer or a number with a unit: "4K", "512 MiB", "0x1000", "2**64")'
    ]


def test_missing_file_is_one_error_line():
    out = run("mtree", "/no/such/machine.yaml")
    assert out.returncode == 1
    assert "cannot read the file" in out.stderr and "Traceback" not in out.stderr


def test_garbage_dump_is_a_clear_import_error(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    out = run("import-qemu", str(junk))
    assert out.returncode == 1
    assert "not a line of `info mtree` output" in out.stderr and "Traceback" not in out.stderr


def test_unknown_command_is_a_usage_error():
    out = run("frobnicate")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
