"""Errors in machine descriptions (and other YAML the project reads), naming the field, line and
column: ``machine.yaml:12:11: regions[0].subregions[3].size: '5 XB' is not a size``."""

from __future__ import annotations

from typing import Any

Path_ = tuple[str | int, ...]


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


class DescriptionError(ValueError):
    """A machine description is wrong; ``problems`` lists ``(path, message)`` pairs."""

    def __init__(self, problems: list[tuple[Path_, str]], source: str = "", locate: Any = None):
        self.problems = problems
        self.source = source
        lines = []
        for path, message in problems:
            where = ""
            if locate is not None:
                mark = locate(path)
                if mark is not None:
                    where = f"{mark[0] + 1}:{mark[1] + 1}: "
            # file:line:col: message where the place is known, else file: message
            prefix = (f"{source}:" if where else f"{source}: ") if source else ""
            what = f"{format_path(path)}: " if path else ""
            lines.append(f"{prefix}{where}{what}{message}")
        super().__init__("\n".join(lines))
