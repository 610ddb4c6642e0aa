"""Built-in machines by name: every YAML file in mmiobus.machine.machines is one."""

from __future__ import annotations

from importlib import resources

import pytest
from mmiobus.machine import (
    DescriptionError,
    Machine,
    MachineNotFoundError,
    builtin_machines,
    builtin_names,
)
from mmiobus.memory import mtree


def test_default_is_a_builtin_machine():
    assert "default" in builtin_names()


def test_each_name_comes_with_the_first_comment_line_of_its_file():
    text = resources.files("mmiobus.machine.machines").joinpath("default.yaml").read_text()
    first = text.splitlines()[0]
    assert builtin_machines()["default"] == first.removeprefix("#").strip()
    assert builtin_machines()["default"].startswith("The built-in default machine")


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_machine_loads_has_an_address_space_and_a_description(name):
    machine = Machine.builtin(name)
    assert machine.spaces, f"built-in machine {name!r} has no address space"
    assert builtin_machines()[name], f"built-in machine {name!r} has no first comment line"
    assert machine.source == f"<{name} machine>"


def test_default_is_the_builtin_machine_named_default():
    assert mtree(Machine.default().system) == mtree(Machine.builtin("default").system)
    assert Machine.default().source == "<default machine>"


def test_an_unknown_name_is_one_line_listing_the_names():
    with pytest.raises(MachineNotFoundError) as info:
        Machine.builtin("riscv-vrit")
    assert str(info.value) == (
        f"no built-in machine 'riscv-vrit'; the built-in machines are: {', '.join(builtin_names())}"
    )
    assert info.value.name == "riscv-vrit" and info.value.names == builtin_names()
    # Whoever reports description errors (the command line) reports this one too.
    assert isinstance(info.value, DescriptionError) and isinstance(info.value, LookupError)
