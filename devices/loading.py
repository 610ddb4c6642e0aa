"""Finding a device class by name (``MODULE:CLASS``), for ``mmiobus device run`` and for the
devices a machine description runs inside the server."""

from __future__ import annotations

import importlib

from .device import Device


class DeviceClassError(ValueError):
    """``MODULE:CLASS`` does not name an importable ``Device`` subclass; says which part."""

    def __init__(self, target: str, problem: str) -> None:
        super().__init__(f"{target}: {problem}")
        self.target = target
        self.problem = problem


def load_device_class(target: str) -> type[Device]:
    """The ``Device`` subclass ``MODULE:CLASS`` names (``DeviceClassError`` if it is not one)."""
    module_name, sep, cls_name = target.partition(":")
    if not sep or not module_name or not cls_name:
        raise DeviceClassError(target, "not MODULE:CLASS (e.g. mmiobus.devices.models.timer:Timer)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DeviceClassError(target, f"cannot import {module_name!r}: {e}") from None
    except Exception as e:  # the module itself is broken: say so in one line
        raise DeviceClassError(
            target, f"importing {module_name!r} failed: {type(e).__name__}: {e}"
        ) from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise DeviceClassError(target, f"{module_name!r} has no {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Device)):
        raise DeviceClassError(target, f"{cls_name!r} is not a subclass of mmiobus.devices.Device")
    return cls
