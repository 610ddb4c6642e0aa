"""The field types of machine descriptions: sizes and addresses as people write them, priorities,
durations, and the strict base of every model (unknown fields are errors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from mmiobus.units import (
    POW_RE,
    SIZE_RE,
    parse_duration_ms,
    parse_region_size,
    parse_u64,
)
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

# The longest number text a size or address may be: 2**64-1 in binary with a separator every
# four digits is 82 characters. Checked before the text is evaluated, so that no string asks
# for unbounded work.
MAX_NUMBER_TEXT = 100


def _bounded(parse: Callable[[Any], int]) -> Callable[[Any], int]:
    def check_length(value: Any) -> int:
        if isinstance(value, str) and len(value) > MAX_NUMBER_TEXT:
            raise ValueError(
                f"{value[:20]!r}... is {len(value)} characters long; a size or address has at "
                f"most {MAX_NUMBER_TEXT}"
            )
        return parse(value)

    return check_length


# -- scalar types ----------------------------------------------------------------------------

_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": SIZE_RE.pattern + "|" + POW_RE.pattern},
    ]
}

Size = Annotated[
    int,
    BeforeValidator(_bounded(parse_region_size)),
    WithJsonSchema({**_SIZE_SCHEMA, "description": 'bytes, 0..2**64; e.g. 4096, "4K", "512 MiB"'}),
]
U64 = Annotated[
    int,
    BeforeValidator(_bounded(parse_u64)),
    WithJsonSchema({**_SIZE_SCHEMA, "description": "0..2**64-1, integer or string"}),
]
Priority = Annotated[int, Field(ge=-(1 << 31), le=(1 << 31) - 1)]
AccessSize = Literal[0, 1, 2, 4, 8]


class Strict(BaseModel):
    """A description model: unknown fields are errors, aliases and names both work."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


DurationMs = Annotated[
    float,
    BeforeValidator(parse_duration_ms),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}],
            "description": 'milliseconds, or a string with a unit: "250ms", "2s", "500us"',
        }
    ),
]
