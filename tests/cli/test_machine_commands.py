"""`mmiobus mtree`, `import-qemu` and `schema`: the commands that need no server, run in this
process (``main(argv)``; see conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from support.mtree_compare import diff, flat_blocks, split_dump

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "qemu"


def test_mtree_f_prints_the_default_machines_flat_view(mmiobus):
    out = mmiobus("mtree", "-f").text()
    assert out.startswith('FlatView #0\n AS "memory", root: system\n')
    assert "(prio 0, ram): ram\n" in out


def test_mtree_prints_a_file_as_qemu_would(mmiobus, tmp_path):
    machine = tmp_path / "m.yaml"
    machine.write_text(
        "address_spaces: [{name: memory, root: system}]\n"
        "regions:\n"
        "  - name: system\n    kind: container\n    size: 2**64\n    subregions:\n"
        "      - {name: lo, kind: alias, target: pc.ram, size: 0x1000}\n"
        "      - {name: off, kind: mmio, addr: 0x2000, size: 0x10, enabled: false}\n"
        "  - {name: pc.ram, kind: ram, size: 0x2000}\n"
    )
    tree = mmiobus("mtree", str(machine)).stdout.decode()
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
    assert "off [disabled]" in mmiobus("mtree", "-D", str(machine)).stdout.decode()


def test_import_qemu_then_mtree_f_reproduces_qemus_flat_view(mmiobus, tmp_path):
    dump = FIXTURES / "x86_64-q35.txt"
    out_file = tmp_path / "q35.yaml"
    imported = mmiobus("import-qemu", str(dump), "-o", str(out_file))
    assert imported.returncode == 0, imported.stderr
    flat = mmiobus("mtree", "-f", str(out_file))
    assert flat.returncode == 0, flat.stderr
    expected = split_dump(dump.read_text())[1]
    assert diff(flat_blocks(expected), flat_blocks(flat.stdout.decode())) == ""


def test_import_qemu_reads_standard_input(mmiobus):
    out = mmiobus("import-qemu", "-", stdin=(FIXTURES / "aarch64-virt.txt").read_bytes())
    text = out.text()
    assert text.startswith("# Imported from QEMU")
    assert "{name: virt.flash0, kind: romd" in text


def test_schema_prints_json_schema(mmiobus):
    out = mmiobus("schema")
    assert json.loads(out.stdout)["title"] == "mmiobus machine description"


def test_bad_description_is_one_error_line_per_problem_and_exit_1(mmiobus, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions:\n  - {name: a, kind: ram, size: lots}\n")
    out = mmiobus("mtree", str(bad))
    assert out.returncode == 1
    assert out.stdout == b""
    assert out.stderr.strip().splitlines() == [
        f"mmiobus mtree: error: {bad}:2:32: regions[0].size: 'lots' is not a size (use an "
        'integer or a number with a unit: "4K", "512 MiB", "0x1000", "2**64")'
    ]


def test_missing_file_is_one_error_line(mmiobus):
    out = mmiobus("mtree", "/no/such/machine.yaml")
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "mmiobus mtree: error: /no/such/machine.yaml: cannot read the file: No such file or "
        "directory"
    ]


def test_garbage_dump_is_a_clear_import_error(mmiobus, tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    out = mmiobus("import-qemu", str(junk))
    assert out.returncode == 1
    assert "not a line of `info mtree` output" in out.stderr and "Traceback" not in out.stderr


def test_unknown_command_is_a_usage_error(mmiobus):
    out = mmiobus("frobnicate")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_mtree_with_both_a_file_and_a_server_is_a_usage_error(mmiobus, tmp_path):
    """`mtree FILE --server ADDR` cannot do both: exit 2, one line saying to give one."""
    out = mmiobus("mtree", str(tmp_path / "m.yaml"), "--server", "127.0.0.1:7170")
    assert out.returncode == 2
    line = out.one_error_line()
    assert "give one of FILE" in line and "--server" in line


def test_serve_refuses_a_device_class_that_cannot_load_in_one_line(mmiobus, tmp_path):
    machine = tmp_path / "bad.yaml"
    machine.write_text(
        "address_spaces: [{name: memory, root: system}]\n"
        "regions:\n"
        "  - name: system\n    kind: container\n    size: 2**64\n    subregions:\n"
        "      - {name: t, kind: mmio, size: 0x10, device: {class: nomodule:Timer}}\n"
    )
    ran = mmiobus("serve", "--config", str(machine), "--listen", "127.0.0.1:0")
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert "bad.yaml:7:" in lines[0] and "device.class" in lines[0] and "nomodule" in lines[0]
    assert "Traceback" not in ran.stderr
    assert "listening" not in ran.output  # nothing was started


def test_serve_refuses_a_machine_file_without_an_address_space(mmiobus, tmp_path):
    machine = tmp_path / "none.yaml"
    machine.write_text("regions:\n  - {name: ram, kind: ram, size: 4K}\n")
    ran = mmiobus("serve", "--config", str(machine), "--listen", "127.0.0.1:0")
    assert ran.returncode == 1
    assert "none.yaml:1:1:" in ran.stderr and "no address space" in ran.stderr
