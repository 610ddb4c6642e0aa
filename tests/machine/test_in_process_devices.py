"""A device the server runs itself (``device: {class: MODULE:CLASS, args: {...}}``) is checked
when its description is loaded: one line at ``device.class`` or ``device.args``."""

from __future__ import annotations

import pytest
from mmiobus.devices.models.timer import Timer
from mmiobus.machine import DescriptionError, DeviceSpecError, Machine, resolve_device_class
from mmiobus.machine.schema import InProcessDevice


def description(device: str) -> str:
    return (
        "address_spaces: [{name: memory, root: system}]\n"
        "regions:\n"
        "  - name: system\n"
        "    kind: container\n"
        "    size: 2**64\n"
        "    subregions:\n"
        "      - name: timer0\n"
        "        kind: mmio\n"
        "        size: 0x10\n"
        f"        device: {device}\n"
    )


def problem(device: str) -> str:
    with pytest.raises(DescriptionError) as info:
        Machine.from_text(description(device), source="m.yaml")
    [line] = str(info.value).splitlines()
    return line


def test_a_good_device_loads():
    machine = Machine.from_text(
        description("{class: mmiobus.devices.models.timer:Timer, args: {period_us: 5}}")
    )
    assert machine.declared["timer0"].spec.device.args == {"period_us": 5}


def test_an_argument_the_constructor_does_not_take_is_an_error_at_args():
    line = problem("{class: mmiobus.devices.models.timer:Timer, args: {period_ms: 5}}")
    assert line == (
        "m.yaml:10:67: regions[0].subregions[0].device.args: do not fit "
        "Timer(period_us=1000): got an unexpected keyword argument 'period_ms'"
    )


def test_a_module_that_does_not_exist_is_an_error_at_class():
    line = problem("{class: no_such_module_for_mmiobus:Thing}")
    assert line.startswith(
        "m.yaml:10:25: regions[0].subregions[0].device.class: "
        "cannot import 'no_such_module_for_mmiobus'"
    )


def test_a_name_the_module_does_not_have_is_an_error_at_class():
    line = problem("{class: mmiobus.devices.models.timer:Timr}")
    assert line == (
        "m.yaml:10:25: regions[0].subregions[0].device.class: "
        "'mmiobus.devices.models.timer' has no 'Timr'"
    )


def test_a_class_that_is_not_a_device_is_an_error_at_class():
    line = problem("{class: mmiobus.devices.registers:Register}")
    assert line == (
        "m.yaml:10:25: regions[0].subregions[0].device.class: "
        "'Register' is not a subclass of mmiobus.devices.Device"
    )


@pytest.fixture
def device_module(tmp_path, monkeypatch):
    """A module of device classes of our own, importable for this test only."""
    (tmp_path / "mmiobus_test_devices.py").write_text(
        "from mmiobus.devices import Device\n"
        "class NeedsBase(Device):\n"
        "    size = 0x10\n"
        "    def __init__(self, base: int, *, name: str = 'x') -> None:\n"
        "        super().__init__()\n"
    )
    (tmp_path / "mmiobus_broken_devices.py").write_text("raise RuntimeError('half written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "mmiobus_test_devices"


def test_a_missing_required_argument_is_an_error_at_args(device_module):
    line = problem(f"{{class: '{device_module}:NeedsBase'}}")
    assert line == (
        "m.yaml:10:17: regions[0].subregions[0].device.args: do not fit "
        "NeedsBase(base, *, name='x'): missing a required argument: 'base'"
    )
    Machine.from_text(description(f"{{class: '{device_module}:NeedsBase', args: {{base: 1}}}}"))


def test_a_module_that_fails_to_import_is_one_line_at_class(device_module):
    line = problem("{class: 'mmiobus_broken_devices:Anything'}")
    assert line.startswith("m.yaml:10:25: regions[0].subregions[0].device.class: importing")
    assert "RuntimeError: half written" in line


def test_every_bad_device_of_a_description_is_reported():
    text = description("{class: nowhere_at_all:X}") + (
        "      - {name: t1, kind: mmio, addr: 0x100, size: 0x10,\n"
        "         device: {class: mmiobus.devices.models.timer:Timer, args: {bad: 1}}}\n"
    )
    with pytest.raises(DescriptionError) as info:
        Machine.from_text(text, source="m.yaml")
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "regions[0].subregions[0].device.class",
        "regions[0].subregions[1].device.args",
    ]


def test_romd_regions_are_checked_too():
    text = (
        "regions: [{name: flash, kind: romd, size: 0x100,"
        " device: {class: mmiobus.devices.models.scratch:ScratchRam, args: {colour: red}}}]"
    )
    with pytest.raises(DescriptionError, match=r"regions\[0\]\.device\.args: do not fit"):
        Machine.from_text(text)


def test_resolve_device_class_gives_the_class_ready_to_make():
    device = InProcessDevice.model_validate(
        {"class": "mmiobus.devices.models.timer:Timer", "args": {"period_us": 7}}
    )
    cls = resolve_device_class(device)
    assert cls is Timer
    assert isinstance(cls(**device.args), Timer)


def test_resolve_device_class_says_which_field_is_wrong():
    device = InProcessDevice.model_validate({"class": "mmiobus.devices.models.timer:Nope"})
    with pytest.raises(DeviceSpecError) as info:
        resolve_device_class(device)
    assert info.value.field == "class"
