"""Machine descriptions (as plain data) written as readable YAML: containers in block style,
leaves on one line, addresses and sizes in hex, strings quoted only where YAML needs it."""

from __future__ import annotations

import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
_HEX_KEYS = {"addr", "size", "offset"}


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if key in _HEX_KEYS and value:
            return hex(value)
        return str(value)
    s = str(value)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flow(d: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(k, v)}" for k, v in d.items()) + "}"


def _emit_region(d: dict[str, Any], indent: str, out: list[str]) -> None:
    subs = d.get("subregions")
    if not subs:
        out.append(f"{indent}- {_flow({k: v for k, v in d.items() if k != 'subregions'})}")
        return
    first = True
    for k, v in d.items():
        if k == "subregions":
            continue
        out.append(f"{indent}{'- ' if first else '  '}{k}: {_scalar(k, v)}")
        first = False
    out.append(f"{indent}  subregions:")
    for s in subs:
        _emit_region(s, indent + "    ", out)


def to_yaml(desc: dict[str, Any], header: str = "") -> str:
    """Readable YAML for a description: containers in block style, leaves on one line."""
    out: list[str] = []
    if header:
        out.extend(f"# {line}" if line else "#" for line in header.splitlines())
    out.append(f"endianness: {desc.get('endianness', 'little')}")
    out.append("address_spaces:")
    for s in desc["address_spaces"]:
        out.append(f"  - {_flow(s)}")
    if not desc["address_spaces"]:
        out[-1] += " []"
    out.append("regions:")
    for r in desc["regions"]:
        _emit_region(r, "  ", out)
    if not desc["regions"]:
        out[-1] += " []"
    return "\n".join(out) + "\n"
