"""Machine descriptions: the YAML contract, its errors and its JSON Schema."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
import yaml
from mmiobus.machine import DescriptionError, Machine, json_schema
from mmiobus.memory import MemTxResult, RegionKind
from mmiobus.units import parse_size

TWO64 = 1 << 64


def load(text: str, tmp_path=None) -> Machine:
    return Machine.from_text(text, tmp_path or ".", source="m.yaml")


def problems(text: str, tmp_path=None) -> list[str]:
    with pytest.raises(DescriptionError) as info:
        load(text, tmp_path)
    return str(info.value).splitlines()


def test_the_example_from_the_contract_loads_and_aliases_ram():
    machine = load(
        """
endianness: little
address_spaces:
  - name: memory
    root: system
regions:
  - name: system
    id: system
    kind: container
    size: 0x10000000000000000
    addr: 0
    priority: 0
    enabled: true
    subregions:
      - {name: ram-below-4g, kind: alias, target: pc.ram, offset: 0, size: 0x20000000}
  - {name: pc.ram, kind: ram, size: 512 MiB}
"""
    )
    memory = machine.address_space("memory")
    [fr] = memory.flatview.ranges
    assert (fr.start, fr.end, fr.mr.name) == (0, 0x20000000, "pc.ram")
    assert machine.region("pc.ram").size == 512 << 20


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (4096, 4096),
        ("4K", 4096),
        ("4 KiB", 4096),
        ("512 MiB", 512 << 20),
        ("2 GB", 2 << 30),
        ("0x1000", 0x1000),
        ("2**64", TWO64),
        ("1_000", 1000),
    ],
)
def test_sizes_accept_integers_and_binary_units(text, value):
    assert parse_size(text) == value


def test_size_of_uint64_max_means_two_to_the_64_as_in_qemu():
    machine = load("regions: [{name: c, kind: container, size: 0xffffffffffffffff}]")
    assert machine.region("c").size == TWO64


def test_regions_of_every_kind_are_built():
    machine = load(
        """
address_spaces: [{name: memory, root: system}]
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 0x1000}
      - {name: rom, kind: rom, addr: 0x1000, size: 0x1000}
      - {name: flash, kind: romd, addr: 0x2000, size: 0x1000, romd_mode: false}
      - {name: uart, kind: mmio, addr: 0x3000, size: 0x100, valid: {min: 1, max: 4}, endianness: big}
      - {name: io, kind: mmio, addr: 0x4000, size: 0x100, unassigned: io}
      - {name: win, kind: alias, target: ram, offset: 0x800, size: 0x100, addr: 0x5000}
"""
    )
    kinds = {mr.name: mr.kind for mr in machine.regions.values()}
    assert kinds == {
        "system": RegionKind.CONTAINER,
        "ram": RegionKind.RAM,
        "rom": RegionKind.ROM,
        "flash": RegionKind.ROMD,
        "uart": RegionKind.MMIO,
        "io": RegionKind.MMIO,
        "win": RegionKind.ALIAS,
    }
    assert machine.region("flash").romd_mode is False
    assert machine.declared["uart"].spec.valid.max == 4  # kept for the device that serves it
    memory = machine.address_space()
    assert memory.read(0x4000, 2) == (b"\xff\xff", MemTxResult.OK)  # unassigned: io
    assert memory.read(0x3000, 1).result == MemTxResult.DECODE_ERROR  # no device yet


def test_later_subregions_win_ties_at_equal_priority():
    machine = load(
        """
address_spaces: [{name: m, root: s}]
regions:
  - name: s
    kind: container
    size: 0x100
    subregions:
      - {name: first, kind: mmio, size: 0x10}
      - {name: second, kind: mmio, size: 0x10}
"""
    )
    assert [fr.mr.name for fr in machine.address_space("m").flatview.ranges] == ["second"]


def test_file_gives_initial_contents_zero_padded(tmp_path):
    (tmp_path / "boot.bin").write_bytes(b"\xea\x5b")
    machine = load(
        """
address_spaces: [{name: m, root: rom}]
regions: [{name: rom, kind: rom, size: 4, file: boot.bin}]
""",
        tmp_path,
    )
    assert machine.address_space("m").read(0, 4).data == b"\xea\x5b\x00\x00"


def test_file_larger_than_the_region_is_an_error_naming_the_field(tmp_path):
    (tmp_path / "big.bin").write_bytes(bytes(8))
    [line] = problems("regions: [{name: rom, kind: rom, size: 4, file: big.bin}]", tmp_path)
    assert "regions[0].file" in line and "more than the region's 4" in line


def test_missing_file_is_an_error_naming_the_field(tmp_path):
    [line] = problems("regions: [{name: rom, kind: rom, size: 4, file: nope.bin}]", tmp_path)
    assert "regions[0].file" in line and "nope.bin" in line


def test_errors_name_the_path_line_and_column_of_the_bad_field():
    lines = problems(
        """regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: a, kind: ram, size: 1}
      - {name: b, kind: ram, size: 1}
      - {name: c, kind: ram, size: 1}
      - {name: d, kind: ram, size: 5 XB}
"""
    )
    assert lines == [
        "m.yaml:9:36: regions[0].subregions[3].size: '5 XB' is not a size (use an integer or "
        'a number with a unit: "4K", "512 MiB", "0x1000", "2**64")'
    ]


@pytest.mark.parametrize(
    ("region", "path", "words"),
    [
        ("{name: a, kind: ramx, size: 1}", "regions[0].kind", "is not one of"),
        ("{name: a, size: 1}", "regions[0].kind", "missing"),
        ("{name: a, kind: ram}", "regions[0].size", "required"),
        ("{name: a, kind: ram, size: 1, colour: red}", "regions[0].colour", "unknown field"),
        ("{name: a, kind: ram, size: 0x10000000000000001}", "regions[0].size", "outside"),
        ("{name: a, kind: ram, size: 1, priority: 0x80000000}", "regions[0].priority", ""),
        ("{name: a, kind: mmio, size: 1, valid: {min: 3}}", "regions[0].valid.min", ""),
        ("{name: a, kind: mmio, size: 1, valid: {min: 4, max: 2}}", "regions[0].valid", "larger"),
        ("{name: a, kind: mmio, size: 1, impl: {unaligned: true}}", "regions[0]", "unaligned"),
        ("{name: a, kind: alias, size: 1, target: nowhere}", "regions[0].target", "nowhere"),
        ("{name: a, kind: mmio, size: 1, unassigned: maybe}", "regions[0].unassigned", "maybe"),
    ],
)
def test_each_bad_field_is_reported_at_its_path(region, path, words):
    [line] = problems(f"regions: [{region}]")
    assert f": {path}: " in line and words in line


def test_duplicate_ids_are_an_error_and_explicit_ids_fix_them():
    [line] = problems("regions: [{name: x, kind: ram, size: 1}, {name: x, kind: ram, size: 1}]")
    assert "regions[1].name: duplicate id 'x'" in line
    machine = load(
        "regions: [{name: x, kind: ram, size: 1}, {name: x, id: x2, kind: ram, size: 1}]"
    )
    assert machine.region("x2").name == "x"


def test_address_space_root_must_exist_and_names_must_be_unique():
    lines = problems(
        """
address_spaces:
  - {name: m, root: nothere}
  - {name: n, root: r}
  - {name: n, root: r}
regions: [{name: r, kind: ram, size: 1}]
"""
    )
    assert any("address_spaces[0].root: 'nothere' is not the id" in x for x in lines)
    assert any("address_spaces[2].name: duplicate address space id 'n'" in x for x in lines)


def test_an_alias_may_point_at_its_own_container():
    """As in real QEMU machines (m68k q800 mirrors its I/O window this way)."""
    machine = load(
        """
regions:
  - name: a
    kind: container
    size: 16
    subregions:
      - {name: a-again, kind: alias, target: a, size: 16}
"""
    )
    assert machine.region("a-again").alias is machine.region("a")


def test_duplicate_yaml_keys_are_refused():
    [line] = problems("regions: []\nregions: []\n")
    assert line == "m.yaml:2:1: not valid YAML: duplicate key 'regions'"


def test_yaml_syntax_errors_are_reported():
    [line] = problems("regions: [")
    assert line.startswith("m.yaml:1:11: not valid YAML:")


def test_top_level_addr_and_priority_are_kept_for_printing():
    machine = load("regions: [{name: bios, kind: rom, addr: 0xfffc0000, priority: -1, size: 4K}]")
    bios = machine.region("bios")
    assert (bios.addr, bios.priority, bios.container) == (0xFFFC0000, -1, None)


def test_default_machine_has_ram_a_boot_rom_and_a_uart_window():
    machine = Machine.default()
    kinds = {mr.name: mr.kind for mr in machine.regions.values()}
    assert kinds["ram"] is RegionKind.RAM
    assert kinds["boot.rom"] is RegionKind.ROM
    assert kinds["uart0"] is RegionKind.MMIO


def test_json_schema_describes_every_kind_and_is_valid_json():
    schema = json.loads(json_schema())
    assert schema["title"] == "mmiobus machine description"
    text = json.dumps(schema)
    for kind in ("container", "ram", "rom", "romd", "mmio", "alias"):
        assert f'"const": "{kind}"' in text
    assert "discriminator" in text or "oneOf" in text


def test_json_schema_accepts_the_default_machine():
    text = resources.files("mmiobus.machine.machines").joinpath("default.yaml").read_text()
    jsonschema.validate(yaml.safe_load(text), json.loads(json_schema()))


def test_json_schema_rejects_what_the_loader_rejects():
    schema = json.loads(json_schema())
    bad = {"regions": [{"name": "a", "kind": "ramx", "size": 1}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_names_like_off_and_no_stay_strings_yaml_1_2_booleans():
    machine = load("regions: [{name: off, kind: ram, size: 1}, {name: no, kind: ram, size: 1}]")
    assert sorted(machine.regions) == ["no", "off"]


def test_a_machine_with_no_address_space_loads_when_not_asked_to_serve():
    """Region trees alone are fine for printing and for tests of the model."""
    machine = load("regions: [{name: r, kind: ram, size: 1}]")
    assert machine.spaces == {}


def test_serving_a_machine_with_no_address_space_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("regions: [{name: system, kind: container, size: 2**64}]\n")
    with pytest.raises(DescriptionError) as info:
        Machine.from_file(path, require_address_space=True)
    assert str(info.value) == (
        f"{path}:1:1: the machine has no address space, so nothing on it can be accessed; add one, "
        "e.g. address_spaces: [{name: memory, root: system}]"
    )


def test_an_empty_file_has_no_address_space_either(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(DescriptionError, match=r"no address space.*root: REGION"):
        Machine.from_file(path, require_address_space=True)
    assert Machine.from_file(path).spaces == {}


def test_other_problems_come_before_the_missing_address_space():
    with pytest.raises(DescriptionError) as info:
        Machine.from_text(
            "regions: [{name: a, kind: ram, size: lots}]",
            source="m.yaml",
            require_address_space=True,
        )
    [line] = str(info.value).splitlines()
    assert line.startswith("m.yaml:1:38: regions[0].size: 'lots' is not a size")
