"""Machine descriptions: YAML files (and built-in machines) that describe address spaces and
region trees, their JSON Schema, and the import of QEMU's ``info mtree`` dumps.

    from mmiobus.machine import Machine

    machine = Machine.from_file("board.yaml")   # or Machine.default(), Machine.builtin("default")
    machine.address_space().read(0x1000, 4)

Modules: ``schema`` (the format), ``description`` (text to a checked spec), ``problems`` (errors
in a person's words), ``build`` (``Machine``), ``builtin`` (the built-in machines by name),
``contents`` (``file:`` contents), ``device_class`` (in-process devices, checked), ``yamlio``
(the one YAML loader), ``errors``; ``qemu_dump``, ``qemu_match`` and ``qemu_import`` (QEMU's
``info mtree`` to a description) and ``yaml_writer`` (a description as YAML).
"""

from .build import Machine
from .builtin import MachineNotFoundError, builtin_machines, builtin_names
from .device_class import DeviceSpecError, resolve_device_class
from .errors import DescriptionError
from .schema import MachineSpec, json_schema

__all__ = [
    "DescriptionError",
    "DeviceSpecError",
    "Machine",
    "MachineNotFoundError",
    "MachineSpec",
    "builtin_machines",
    "builtin_names",
    "json_schema",
    "resolve_device_class",
]
