"""The class of a device a description runs inside the server (``device: {class: MODULE:CLASS,
args: {...}}``), imported and checked when the description is loaded, so that a bad one is one
line naming the field rather than a failure when the server starts it."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Literal

from .schema import InProcessDevice

if TYPE_CHECKING:
    from mmiobus.devices import Device


class DeviceSpecError(ValueError):
    """An in-process device cannot be made as described; ``field`` is ``"class"`` (the class
    cannot be found or is not a ``Device``) or ``"args"`` (they do not fit its constructor)."""

    def __init__(self, field: Literal["class", "args"], message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def resolve_device_class(device: InProcessDevice) -> type[Device]:
    """Import the ``Device`` subclass ``device.class_`` names and check that ``device.args``
    bind to its constructor (names and required arguments, not types); returns the class,
    ready for ``cls(**device.args)``. Raises ``DeviceSpecError``.

    Importing the module runs it: call this only for descriptions you would serve."""
    # Imported here: the device SDK (and the device's module) load only for descriptions that
    # run devices in the server.
    from mmiobus.devices.loading import DeviceClassError, load_device_class

    try:
        cls = load_device_class(device.class_)
    except DeviceClassError as e:
        raise DeviceSpecError("class", e.problem) from None
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to check against (e.g. a C extension)
        return cls
    try:
        signature.bind(**device.args)
    except TypeError as e:
        raise DeviceSpecError(
            "args", f"do not fit {cls.__name__}{_plain(signature)}: {e}"
        ) from None
    return cls


def _plain(signature: inspect.Signature) -> str:
    # Without annotations: "Timer(period_us=1000, periodic=False)" reads better in one line, and
    # string annotations (from __future__ import annotations) would print quoted.
    params = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=params, return_annotation=inspect.Signature.empty))
