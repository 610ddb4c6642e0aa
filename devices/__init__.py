"""mmiobus's device SDK: write a `Device` subclass, run it out of process
(`mmiobus device run MODULE:CLASS`), inside the server (`device: {class: ...}`), or directly
on a memory system in a test (`mmiobus.devices.direct.attach`), with the same behaviour.

Importing it loads neither pydantic nor YAML. Example models live in `mmiobus.devices.models`:
a 16550 UART, a timer, a DMA engine and a scratch RAM.
"""

from .device import Device, DmaFault, Irq
from .direct import DirectHost, attach
from .host import DmaRequest, Host, RegionInfo
from .registers import Register, RegisterFile
from .runner import DeviceRunner, Placement

__all__ = [
    "Device",
    "DeviceRunner",
    "DirectHost",
    "DmaFault",
    "DmaRequest",
    "Host",
    "Irq",
    "Placement",
    "RegionInfo",
    "Register",
    "RegisterFile",
    "attach",
]
