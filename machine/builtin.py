"""The built-in machines: the YAML files in ``mmiobus.machine.machines``, by name.

A file ``NAME.yaml`` there is the machine ``NAME`` (``default`` is what ``serve`` and ``mtree``
use when given no file); its first comment line describes it in one line. Adding a machine is
adding a file.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from .errors import DescriptionError

_PACKAGE = "mmiobus.machine.machines"
_SUFFIX = ".yaml"


class MachineNotFoundError(DescriptionError, LookupError):
    """No built-in machine has this name; the message lists the names there are."""

    def __init__(self, name: str, names: list[str]) -> None:
        self.name = name
        self.names = names
        message = f"no built-in machine {name!r}; the built-in machines are: {', '.join(names)}"
        super().__init__([((), message)])


def _files() -> dict[str, Traversable]:
    folder = resources.files(_PACKAGE)
    return {
        entry.name[: -len(_SUFFIX)]: entry
        for entry in folder.iterdir()
        if entry.name.endswith(_SUFFIX) and entry.is_file()
    }


def builtin_names() -> list[str]:
    """The names of the built-in machines, sorted."""
    return sorted(_files())


def builtin_text(name: str) -> str:
    """The description of built-in machine ``name`` (``MachineNotFoundError`` if none)."""
    entry = _files().get(name)
    if entry is None:
        raise MachineNotFoundError(name, builtin_names())
    return entry.read_text()


def builtin_machines() -> dict[str, str]:
    """Each built-in machine's name and one-line description (its file's first comment line,
    or ``""`` when it starts with none), sorted by name."""
    return {name: _summary(builtin_text(name)) for name in builtin_names()}


def _summary(text: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    return first[1:].strip() if first.startswith("#") else ""
