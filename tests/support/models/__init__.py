"""Device classes written for the tests, and the targets of the library's example models.

Servers and device processes started by ``support.servers`` and ``support.devices`` import these
modules by the same names as the tests (their PYTHONPATH holds the folder of ``support``), so a
test names a class with ``target(cls)`` whether a device process or the server runs it.
"""

from __future__ import annotations

# The example models that ship with mmiobus.
DMA_ENGINE = "mmiobus.devices.models.dma:DmaEngine"
TIMER = "mmiobus.devices.models.timer:Timer"
UART = "mmiobus.devices.models.uart16550:Uart16550"
SCRATCH = "mmiobus.devices.models.scratch:ScratchRam"


def target(cls: type) -> str:
    """``MODULE:CLASS``, as `mmiobus device run` and a description's ``device: {class: ...}``
    take it."""
    return f"{cls.__module__}:{cls.__qualname__}"
