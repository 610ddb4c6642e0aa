"""Pydantic's validation errors in a person's words, at paths written the way a person points
into the file (``regions[0].subregions[3].size``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .errors import Path_
from .schema import KINDS

# Pydantic error types whose message is clearer with the offending value after it.
_SHOW_INPUT = frozenset(
    {
        "literal_error",
        "less_than_equal",
        "greater_than_equal",
        "int_parsing",
        "int_type",
        "bool_type",
        "bool_parsing",
        "string_type",
    }
)


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    # Drop the discriminator tags pydantic inserts after a list index ("regions", 0, "ram", ...).
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and part in KINDS and i > 0 and isinstance(loc[i - 1], int):
            continue
        out.append(part)
    return tuple(out)


def problem_message(err: Mapping[str, Any]) -> str:
    """A person's wording of one pydantic error (an item of ``ValidationError.errors()``)."""
    kind = err["type"]
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return f"kind {tag!r} is not one of {', '.join(KINDS)}"
    if kind == "union_tag_not_found":
        return f"kind is missing (one of {', '.join(KINDS)})"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind in _SHOW_INPUT:
        msg += f" (got {err.get('input')!r})"
    return msg


def problem_path(err: Mapping[str, Any]) -> Path_:
    """Where one pydantic error points, without pydantic's discriminator tags; a bad or missing
    ``kind`` points at the ``kind`` field."""
    path = _clean_loc(tuple(err["loc"]))
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        path = (*path, "kind")
    return path


def problems_of(error: ValidationError) -> list[tuple[Path_, str]]:
    """Every error of a pydantic ``ValidationError`` as ``(path, message)``."""
    return [(problem_path(err), problem_message(err)) for err in error.errors()]
