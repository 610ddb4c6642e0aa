"""Machine descriptions: YAML files (and built-in machines) that describe address spaces and
region trees, their JSON Schema, and the import of QEMU's ``info mtree`` dumps.

    from mmiobus.machine import Machine

    machine = Machine.from_file("board.yaml")   # or Machine.default()
    machine.address_space().read(0x1000, 4)
"""

from .build import Machine
from .description import DescriptionError, MachineSpec, json_schema

__all__ = ["DescriptionError", "Machine", "MachineSpec", "json_schema"]
