"""Numbers as people write them: sizes (``"4K"``, ``"512 MiB"``, ``"0x1000"``, ``"2**64"``),
addresses and durations (``"250ms"``).

One copy for machine descriptions, topology files, the command line and the clients, with no
heavy imports, so that every role (the device SDK included) can use it.
"""

from __future__ import annotations

import re
from typing import Any

TWO64 = 1 << 64
MASK64 = TWO64 - 1

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
    "p": 1 << 50,
    "pb": 1 << 50,
    "pib": 1 << 50,
    "e": 1 << 60,
    "eb": 1 << 60,
    "eib": 1 << 60,
}
SIZE_RE = re.compile(
    r"^\s*(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)\s*([A-Za-z]*)\s*$"
)
POW_RE = re.compile(r"^\s*2\s*\*\*\s*([0-9]{1,3})\s*$")
MAX_EXPONENT = 64


def parse_size(value: Any) -> int:
    """An integer, or a string such as ``"512 MiB"``, ``"4K"``, ``"0x1000"`` or ``"2**64"``.

    Units are binary (K = KiB = 1024), as in QEMU's ``-m``. ``2**N`` takes N up to 64, so
    that no expression can ask for an unbounded amount of work.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = POW_RE.match(value)
        if m:
            exponent = int(m.group(1))
            if exponent > MAX_EXPONENT:
                raise ValueError(f"{value!r}: the exponent is above {MAX_EXPONENT}")
            return 1 << exponent
        m = SIZE_RE.match(value)
        if m and m.group(2).lower() in _UNITS:
            return _integer(m.group(1)) * _UNITS[m.group(2).lower()]
        raise ValueError(
            f"{value!r} is not a size (use an integer or a number with a unit: "
            '"4K", "512 MiB", "0x1000", "2**64")'
        )
    raise ValueError(f"expected a size, got {type(value).__name__} {value!r}")


def _integer(text: str) -> int:
    prefixed = text[:2].lower() in ("0x", "0o", "0b")
    return int(text.replace("_", ""), 0 if prefixed else 10)


def parse_u64(value: Any) -> int:
    """A size or address in 0..2**64-1."""
    n = parse_size(value)
    if not 0 <= n <= MASK64:
        raise ValueError(f"{value!r} is outside 0..2**64-1")
    return n


def parse_region_size(value: Any) -> int:
    """A region size in 0..2**64."""
    n = parse_size(value)
    if not 0 <= n <= TWO64:
        raise ValueError(f"{value!r} is outside 0..2**64")
    return n


_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(ns|us|ms|s)?\s*$")
_DURATION_UNITS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1000.0, None: 1.0}


def parse_duration_ms(value: Any) -> float:
    """Milliseconds from a number (milliseconds) or a string such as "250ms", "2s", "500us";
    in (0, 1 hour]."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        ms = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        ms = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration (e.g. 250ms, 2s, or a number of ms)")
    if not 0 < ms <= 3_600_000:
        raise ValueError(f"{value!r} is outside (0, 1 hour]")
    return ms
