"""Topology operations checked where they are written (`Transaction` methods and the YAML of
`mmiobus apply`): a wrong field is a ``ValueError`` that names the operation, the field, the
value and what it should be, in one line and in the file's words. No server here."""

from __future__ import annotations

import pytest
from mmiobus.client import Transaction
from mmiobus.client.topology import from_yaml
from mmiobus.v1 import bus_pb2 as pb


def _one_line(text: str) -> str:
    message = _error(text)
    assert len(message.splitlines()) == 1, message
    for python in ("object", "interpreted", "positional", "keyword argument", "built-in"):
        assert python not in message, message
    return message


def _error(text: str) -> str:
    with pytest.raises(ValueError) as info:
        from_yaml(text, source="ops.yaml")
    return str(info.value)


def test_yaml_1_2_keeps_off_no_and_on_as_names():
    ops = from_yaml(
        "- set_enabled: {id: off, enabled: false}\n"
        "- set_readonly: {id: no, readonly: true}\n"
        "- remove_subregion: {child: on}\n"
    ).ops
    assert [ops[0].set_enabled.id, ops[1].set_readonly.id, ops[2].remove_subregion.child] == [
        "off",
        "no",
        "on",
    ]


def test_sizes_and_addresses_take_units_and_2_pow_64():
    ops = from_yaml(
        "- create_region: {id: r, kind: ram, size: 4K}\n"
        "- set_size: {id: c, size: 2**64}\n"
        "- add_subregion: {parent: system, child: r, addr: 1M, priority: -1}\n"
    ).ops
    assert ops[0].create_region.size == 4096
    assert ops[1].set_size.size == (1 << 64) - 1  # the wire's 2**64
    assert (ops[2].add_subregion.addr, ops[2].add_subregion.priority) == (1 << 20, -1)


@pytest.mark.parametrize(
    "op, words",
    [
        ("add_subregion: {parent: s, child: c, addr: 0, priority: high}", ["priority", "'high'"]),
        ("set_priority: {id: x, priority: 1.5}", ["priority", "1.5", "integer"]),
        ("set_priority: {id: x, priority: 4294967296}", ["priority", "outside"]),
        ("set_enabled: {id: x, enabled: yes}", ["enabled", "'yes'", "true or false"]),
        ("create_region: {id: 5, kind: ram, size: 16}", ["id", "5", "string"]),
        ("create_region: {id: r, kind: flash, size: 16}", ["kind", "'flash'", "ram"]),
        ("create_region: {id: r, kind: ram, size: 16, contents: abc}", ["contents", "file:"]),
        ("create_region: {id: r, kind: mmio, size: 16, valid: {min: x}}", ["valid.min", "'x'"]),
        ("create_region: {id: r, kind: mmio, size: 16, valid: 4}", ["valid", "4", "mapping"]),
        ("create_region: {id: r, kind: ram, size: 0x10000000000000001}", ["size", "outside"]),
        ("set_address: {id: x, addr: [1]}", ["addr", "[1]", "number"]),
        ("set_priority: {id: x}", ["missing", "priority"]),
        ("set_priority: {id: x, priority: 1, extra: 2}", ["unknown field 'extra'", "id, priority"]),
        ("set_size: [1]", ["fields"]),
    ],
)
def test_a_wrong_field_is_one_line_naming_the_op_and_the_field(op, words):
    message = _one_line(f"- set_enabled: {{id: x, enabled: true}}\n- {op}\n")
    assert message.startswith(f"ops[1].{op.split(':')[0]}: "), message
    for word in words:
        assert word in message, message


def test_malformed_yaml_names_the_source_line_and_column():
    assert _error("- set_enabled: {id: x\n").startswith("ops.yaml:2:1: not valid YAML")


def test_transaction_methods_check_their_arguments_too():
    t = Transaction()
    with pytest.raises(ValueError, match="priority 'high' is not an integer"):
        t.set_priority("x", "high")  # type: ignore[arg-type]
    assert t.ops == []
    t.create_region("r", "mmio", "4K", endianness="big", unassigned="io", valid={"max": 4})
    op = t.ops[0].create_region
    assert (op.size, op.endianness, op.unassigned, op.valid.max) == (
        4096,
        pb.BIG,
        pb.UNASSIGNED_IO,
        4,
    )
