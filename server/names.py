"""Names and glob patterns that peers send: bounded before they cost anything.

Region, device, address-space and interrupt-line names are at most ``MAX_NAME_BYTES`` (UTF-8);
a filter has at most ``MAX_PATTERNS`` globs of at most ``MAX_PATTERN_BYTES`` each, and
``MAX_PATTERNS_BYTES`` in all, so that compiling them takes milliseconds. Globs are compiled
once per filter with ``compile_globs`` and kept by the filter (``fnmatch`` would cache up to
32,768 compiled patterns for the life of the process; ``re``'s own cache keeps at most 512).
Every refusal is ``InvalidRequest`` naming the field and the limit.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

from .errors import InvalidRequest

MAX_NAME_BYTES = 256
MAX_PATTERN_BYTES = 512
MAX_PATTERNS = 64
MAX_PATTERNS_BYTES = 4096

Matcher = Callable[[str], bool]


def check_length(value: str, what: str) -> str:
    """``value`` unchanged if it is at most ``MAX_NAME_BYTES`` long in UTF-8, else
    ``InvalidRequest`` naming ``what``."""
    if len(value) > MAX_NAME_BYTES // 4 and len(value.encode()) > MAX_NAME_BYTES:
        raise InvalidRequest(
            f"{what}: {len(value.encode())} bytes, longer than the limit of {MAX_NAME_BYTES} "
            "bytes per name"
        )
    return value


def check_globs(patterns: Iterable[str], what: str) -> list[str]:
    """``patterns`` as a list if they are within the bounds (see the module docstring), else
    ``InvalidRequest`` naming ``what``."""
    pats = list(patterns)
    if len(pats) > MAX_PATTERNS:
        raise InvalidRequest(f"{what}: {len(pats)} patterns, more than the limit of {MAX_PATTERNS}")
    total = 0
    for i, p in enumerate(pats):
        size = len(p.encode())
        if size > MAX_PATTERN_BYTES:
            raise InvalidRequest(
                f"{what}[{i}]: a pattern of {size} bytes, longer than the limit of "
                f"{MAX_PATTERN_BYTES}"
            )
        total += size
    if total > MAX_PATTERNS_BYTES:
        raise InvalidRequest(
            f"{what}: {total} bytes of patterns, more than the limit of {MAX_PATTERNS_BYTES}"
        )
    return pats


def compile_globs(patterns: Iterable[str], what: str) -> Matcher | None:
    """One matcher for any of ``patterns`` (shell globs, as ``fnmatch.fnmatchcase``), or None
    when there are none. The bounds are checked (``check_globs``) before anything is
    compiled."""
    pats = check_globs(patterns, what)
    if not pats:
        return None
    plain = frozenset(p for p in pats if not _has_magic(p))
    globs = [re.compile(fnmatch.translate(p)).match for p in pats if _has_magic(p)]
    if not globs:
        return plain.__contains__

    def matches(name: str) -> bool:
        return name in plain or any(m(name) is not None for m in globs)

    return matches


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
