"""mmiobus's device SDK: write a `Device` subclass, run it out of process
(`mmiobus device run MODULE:CLASS`) or inside the server (`device: {class: ...}`), identically.

Example models live in `mmiobus.devices.models`: a 16550 UART, a timer, a DMA engine and a
scratch RAM.
"""

from .device import Device, DmaFault, Irq, RegionInfo
from .registers import Register, RegisterFile
from .runner import DeviceRunner, Placement

__all__ = [
    "Device",
    "DeviceRunner",
    "DmaFault",
    "Irq",
    "Placement",
    "RegionInfo",
    "Register",
    "RegisterFile",
]
