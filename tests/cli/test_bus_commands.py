"""`mmiobus mtree --server`, `info` and `apply` against a real server (MACHINE in
conftest.py), run in this process (``main(argv)``).

Expected output is derived from what the Python client reads from the same server.
"""

from __future__ import annotations

import itertools
import json

import pytest
from mmiobus.v1 import bus_pb2 as pb

_names = itertools.count()


def uid(prefix: str = "cli") -> str:
    return f"{prefix}{next(_names)}"


# -- mtree, info -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags", [[], ["-f"], ["-D"], ["-f", "-D"]], ids=["tree", "flat", "disabled", "flat-disabled"]
)
def test_mtree_server_prints_the_servers_mtree(mmiobus, srv, bus, flags):
    """`mtree --server ADDR [-f] [-D]` prints exactly what the server's Mtree returns."""
    out = mmiobus("mtree", "--server", srv, *flags).text()
    assert out == bus.mtree(flat="-f" in flags, disabled="-D" in flags)


def test_mtree_server_shows_disabled_regions_only_with_D(mmiobus, srv):
    """The machine's disabled region appears with -D only."""
    assert "spare" not in mmiobus("mtree", "--server", srv).text()
    assert "spare [disabled]" in mmiobus("mtree", "--server", srv, "-D").text()


def test_info_json_prints_the_servers_info_as_json(mmiobus, srv, bus):
    """`info --json` prints JSON with the server's version, byte order, address spaces and
    limits."""
    info = json.loads(mmiobus("info", "--json", "-s", srv).text())
    assert info["version"] == bus.info.version
    assert info["protocolVersion"] == bus.info.protocol_version
    assert info["endianness"] == pb.Endianness.Name(bus.info.endianness)
    assert [s["id"] for s in info["addressSpaces"]] == [s.id for s in bus.info.address_spaces]
    assert info["limits"]["maxTopologyOps"] == bus.info.limits.max_topology_ops
    assert info["limits"]["maxAccessBytes"] == bus.info.limits.max_access_bytes


def test_info_prints_what_the_server_is_for_people(mmiobus, srv, bus):
    """`info` prints one line per fact for people: the server, version and protocol, the
    machine, the byte order, the address spaces with their roots, and each limit with the
    option that sets it."""
    out = mmiobus("info", "-s", srv).text()
    rows = dict(line.split(":", 1) for line in out.splitlines())
    rows = {k: v.strip() for k, v in rows.items()}
    assert srv in rows["server"] and bus.info.version in rows["server"]
    assert f"protocol {bus.info.protocol_version}" in rows["server"]
    assert rows["machine"] == bus.info.machine
    assert rows["byte order"] == "little-endian"
    assert rows["address spaces"] == "memory (root: system), dma (root: dma-root)"
    assert rows["per access"] == "1 MiB (--max-access-bytes)"
    assert "--max-batch-bytes" in rows["per batch"] and "--max-batch-accesses" in rows["per batch"]
    assert f"{bus.info.limits.max_topology_ops} operations" in rows["per transaction"]
    assert "--max-message-bytes" in rows["per message"]


# -- apply -----------------------------------------------------------------------------------


def test_apply_applies_yaml_ops_with_file_contents_and_prints_a_summary(
    mmiobus, srv, bus, tmp_path
):
    """`apply FILE`: ops from YAML (contents from `file:` next to it), then one summary line
    with the number of ops and the new topology generation."""
    r = uid()
    (tmp_path / "image.bin").write_bytes(b"loaded from file")
    ops = tmp_path / "ops.yaml"
    ops.write_text(
        f"- create_region: {{id: {r}, kind: rom, size: 0x100, file: image.bin}}\n"
        f"- add_subregion: {{parent: system, child: {r}, addr: 0x60000000, priority: 1}}\n"
    )
    out = mmiobus("apply", "-s", srv, str(ops)).text()
    assert bus.read(0x60000000, 16) == b"loaded from file"
    [line] = out.splitlines()
    generation = bus.topology(flat_views=False).generation
    assert "applied 2 operations" in line
    assert str(generation) in line


def test_apply_reads_standard_input(mmiobus, srv, bus):
    """`apply -` reads the ops from standard input."""
    r = uid()
    yaml_ops = (
        f"- create_region: {{id: {r}, kind: ram, size: 4K}}\n"
        f"- add_subregion: {{parent: system, child: {r}, addr: 0x61000000}}\n"
        f"- set_enabled: {{id: {r}, enabled: false}}\n"
    )
    out = mmiobus("apply", "-s", srv, "-", stdin=yaml_ops.encode()).text()
    assert "applied 3 operations" in out
    region = next(x for x in bus.topology(flat_views=False).regions if x.id == r)
    assert (region.container, region.addr, region.enabled) == ("system", 0x61000000, False)


def test_failing_apply_is_one_error_line_naming_the_op_and_changes_nothing(
    mmiobus, srv, bus, tmp_path
):
    """An op referring to a missing region: exit 1, one line naming the op, nothing applied."""
    made, missing = uid("made"), uid("missing")
    ops = tmp_path / "bad.yaml"
    ops.write_text(
        f"- create_region: {{id: {made}, kind: ram, size: 0x100}}\n"
        f"- add_subregion: {{parent: system, child: {made}, addr: 0x62000000}}\n"
        f"- set_address: {{id: {missing}, addr: 0x1000}}\n"
    )
    before = (bus.topology(), bus.mtree(), bus.mtree(flat=True))
    out = mmiobus("apply", "-s", srv, str(ops))
    assert out.returncode == 1
    line = out.one_error_line()
    assert "ops[2]" in line
    assert missing in line
    assert (bus.topology(), bus.mtree(), bus.mtree(flat=True)) == before
    assert bus.read(0x62000000, 4, check=False).result != 0


def test_apply_with_an_unknown_operation_is_one_error_line(mmiobus, srv, bus, tmp_path):
    """A YAML entry that is no operation: exit 1, one line naming the entry and the name."""
    r = uid()
    ops = tmp_path / "typo.yaml"
    ops.write_text(
        f"- create_region: {{id: {r}, kind: ram, size: 0x100}}\n"
        f"- add_subregoin: {{parent: system, child: {r}, addr: 0x63000000}}\n"
    )
    before = bus.topology()
    out = mmiobus("apply", "-s", srv, str(ops))
    assert out.returncode == 1
    line = out.one_error_line()
    assert "ops[1]" in line
    assert "add_subregoin" in line
    assert bus.topology() == before


def test_apply_with_a_bad_field_value_is_one_error_line(mmiobus, srv, tmp_path):
    """A size that is not a size: exit 1, one line naming the op and the value."""
    ops = tmp_path / "size.yaml"
    ops.write_text(f"- create_region: {{id: {uid()}, kind: ram, size: lots}}\n")
    out = mmiobus("apply", "-s", srv, str(ops))
    assert out.returncode == 1
    line = out.one_error_line()
    assert "ops[0]" in line
    assert "lots" in line


def test_apply_missing_file_is_one_error_line(mmiobus, srv, tmp_path):
    """`apply` of a file that does not exist: exit 1, one line naming it."""
    path = tmp_path / "absent.yaml"
    out = mmiobus("apply", "-s", srv, str(path))
    assert out.returncode == 1
    assert str(path) in out.one_error_line()


def test_apply_reads_yaml_1_2_so_off_is_a_name(mmiobus, srv, bus, tmp_path):
    """Topology files are YAML 1.2, as machine descriptions are: a region named `off` (or
    `no`, `on`) stays a name instead of becoming a boolean."""
    ops = tmp_path / "off.yaml"
    ops.write_text(
        "- create_region: {id: off, kind: ram, size: 0x100}\n"
        "- add_subregion: {parent: system, child: off, addr: 0x64000000}\n"
    )
    assert "applied 2 operations" in mmiobus("apply", "-s", srv, str(ops)).text()
    assert "off" in [r.id for r in bus.topology(flat_views=False).regions]


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("priority", "high", ["priority", "'high'", "integer"]),
        ("addr", "[1]", ["addr", "[1]", "number"]),
        ("child", "5", ["child", "5", "string"]),
    ],
)
def test_apply_with_a_value_of_the_wrong_kind_names_the_field_not_python(
    mmiobus, srv, tmp_path, field, value, words
):
    """A field given a value of the wrong kind: one line naming the op, the field, the value
    and what it should be, in the file's words (no "'str' object cannot be interpreted as an
    integer")."""
    fields = {"parent": "system", "child": "ram", "addr": "0x1000", "priority": "0", field: value}
    ops = tmp_path / "kind.yaml"
    ops.write_text("- add_subregion: {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}\n")
    out = mmiobus("apply", "-s", srv, str(ops))
    assert out.returncode == 1
    line = out.one_error_line()
    assert "ops[0].add_subregion" in line
    for word in words:
        assert word in line
    assert "object" not in line and "interpreted" not in line


def test_apply_with_malformed_yaml_names_the_file_line_and_column(mmiobus, srv, tmp_path):
    """YAML that does not parse: one line with FILE:LINE:COLUMN."""
    ops = tmp_path / "broken.yaml"
    ops.write_text("- set_enabled: {id: ram, enabled: false}\n- set_enabled: [\n")
    out = mmiobus("apply", "-s", srv, str(ops))
    assert out.returncode == 1
    assert f"{ops}:3:1: not valid YAML" in out.one_error_line()
