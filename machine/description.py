"""Reading a machine description: YAML text (or parsed data) into a checked ``MachineSpec``,
with every problem reported as ``file:line:col: path: message``.

The format itself is ``mmiobus.machine.schema``; building a machine from it is
``mmiobus.machine.build``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .errors import DescriptionError
from .problems import problems_of
from .schema import MachineSpec
from .yamlio import load_yaml


def validate(data: Any, source: str = "", locate: Any = None) -> MachineSpec:
    """Check parsed YAML/JSON against the schema; raise ``DescriptionError`` with every problem.

    ``None`` (an empty file) is an empty machine. ``source`` and ``locate`` (from ``load_yaml``)
    place each problem in its file."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DescriptionError([((), "a machine description is a mapping")], source, locate)
    try:
        return MachineSpec.model_validate(data)
    except ValidationError as e:
        raise DescriptionError(problems_of(e), source, locate) from None


def parse_text(text: str, source: str = "") -> tuple[MachineSpec, Any]:
    """Parse and check YAML text; returns the spec and a locator from paths to (line, column)."""
    data, locate = load_yaml(text, source)
    return validate(data, source, locate), locate


def require_address_space(spec: MachineSpec, source: str = "", locate: Any = None) -> None:
    """Refuse a machine with no address space (nothing could be read or written on it), with
    one line naming ``source`` and saying what to add."""
    if spec.address_spaces:
        return
    root = spec.regions[0].key if spec.regions else "REGION"
    top = (locate(()) if locate is not None else None) or (0, 0)  # where the file starts
    raise DescriptionError(
        [
            (
                (),
                "the machine has no address space, so nothing on it can be accessed; add one, "
                f"e.g. address_spaces: [{{name: memory, root: {root}}}]",
            )
        ],
        source,
        lambda _path: top,
    )
