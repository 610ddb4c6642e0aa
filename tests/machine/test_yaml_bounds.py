"""Local YAML cannot ask for unbounded work: nesting, alias expansion, integer and size text
and ``file:`` contents are bounded before anything is evaluated, each failure one line."""

from __future__ import annotations

import os
import time

import pytest
from mmiobus.machine import DescriptionError, Machine
from mmiobus.machine.yamlio import MAX_ALIAS_NODES, MAX_DEPTH, MAX_NUMBER_TEXT, load_yaml


def one_line(text: str) -> str:
    with pytest.raises(DescriptionError) as info:
        load_yaml(text, "m.yaml")
    [line] = str(info.value).splitlines()
    return line


def machine_problem(text: str, tmp_path=None) -> str:
    with pytest.raises(DescriptionError) as info:
        Machine.from_text(text, tmp_path or ".", source="m.yaml")
    [line] = str(info.value).splitlines()
    return line


def test_nesting_up_to_the_limit_loads():
    data, _ = load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    for _ in range(MAX_DEPTH - 1):
        [data] = data
    assert data == []


def test_nesting_past_the_limit_is_refused_where_it_goes_too_deep():
    depth = MAX_DEPTH + 1
    line = one_line("[" * depth + "]" * depth)
    assert line == f"m.yaml:1:{depth}: collections nest deeper than {MAX_DEPTH} levels"


def test_very_deep_nesting_is_one_line_not_a_recursion_error():
    line = one_line("a: " + "[" * 100_000 + "]" * 100_000)
    assert "nest deeper than" in line


def billion_laughs(levels: int) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        refs = ", ".join([f"*l{i - 1}"] * 10)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_anything_is_built():
    started = time.monotonic()
    line = one_line(billion_laughs(9))  # 10**9 "lol"s once expanded
    assert time.monotonic() - started < 2
    assert f"aliases expand the document by more than {MAX_ALIAS_NODES} nodes" in line
    assert line.startswith("m.yaml:5:")  # level 4 is the first past 100,000 nodes


def test_aliases_within_the_bound_load_and_share_their_anchor():
    data, _ = load_yaml(billion_laughs(3))  # 1,000 lols
    assert len(data["l2"]) == 10 and data["l2"][0] == data["l1"]


def test_an_alias_inside_its_own_anchor_is_refused():
    assert one_line("a: &a [1, *a]") == (
        "m.yaml:1:11: alias *a refers to a collection that contains it"
    )
    assert "refers to a collection that contains it" in one_line("a: &a {b: {c: *a}}")


def test_integers_longer_than_the_limit_are_refused_before_int_runs():
    line = one_line("size: " + "9" * 100_000)
    assert line == f"m.yaml:1:7: an integer of 100000 characters (at most {MAX_NUMBER_TEXT})"


def test_the_longest_u64_in_binary_still_loads():
    text = "0b" + "_".join(["1111"] * 16)
    assert len(text) <= MAX_NUMBER_TEXT
    data, _ = load_yaml(f"x: {text}")
    assert data == {"x": 2**64 - 1}


def test_a_scalar_python_cannot_build_is_one_line_at_the_scalar():
    line = one_line("when: 2001-13-01")
    assert line.startswith("m.yaml:1:7: not valid YAML: cannot read '2001-13-01' as timestamp")


def test_size_text_longer_than_the_limit_is_refused_at_the_field():
    line = machine_problem(f"regions: [{{name: r, kind: ram, size: '{'1' * 5000} KiB'}}]")
    assert line.startswith("m.yaml:1:38: regions[0].size: '11111111111111111111'...")
    assert f"at most {MAX_NUMBER_TEXT}" in line


def test_addresses_are_bounded_like_sizes():
    line = machine_problem(f"regions: [{{name: r, kind: ram, size: 1, addr: '{'0' * 200}'}}]")
    assert "regions[0].addr: " in line and "200 characters long" in line


# -- file: contents ---------------------------------------------------------------------------


def rom(file: str, size: int = 4096) -> str:
    return (
        "address_spaces: [{name: m, root: rom}]\n"
        f"regions: [{{name: rom, kind: rom, size: {size}, file: {file}}}]\n"
    )


def test_a_huge_file_is_refused_from_its_size_without_reading_it(tmp_path):
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:
        f.truncate(10 << 30)  # sparse: 10 GiB that would take long to read
    started = time.monotonic()
    line = machine_problem(rom("huge.bin"), tmp_path)
    assert time.monotonic() - started < 2
    assert line.startswith("m.yaml:2:")
    assert f"regions[0].file: '{huge}' has {10 << 30} bytes, more than the region's 4096" in line


def test_a_file_exactly_the_regions_size_loads(tmp_path):
    (tmp_path / "fits.bin").write_bytes(b"\x5a" * 16)
    machine = Machine.from_text(rom("fits.bin", 16), tmp_path)
    assert machine.address_space("m").read(15, 1).data == b"\x5a"


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    line = machine_problem(rom("pipe"), tmp_path)
    assert "regions[0].file: " in line and "is not a regular file" in line


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_device_file_is_refused():
    line = machine_problem(rom("/dev/zero"))
    assert "regions[0].file: '/dev/zero' is not a regular file" in line


def test_a_directory_is_one_line(tmp_path):
    (tmp_path / "dir").mkdir()
    line = machine_problem(rom("dir"), tmp_path)
    assert line.endswith(f"regions[0].file: '{tmp_path / 'dir'}' cannot be read: Is a directory")
