"""Compare `info mtree` text block by block, ignoring the order QEMU's hash tables give blocks."""

from __future__ import annotations

import re
from collections import Counter

_FV_HEAD = re.compile(r"^FlatView #\d+$")


def split_dump(text: str) -> tuple[str, str]:
    """A pasted monitor session → (tree part, flat part), without the prompt lines."""
    tree: list[str] = []
    flat: list[str] = []
    target = tree
    for line in text.splitlines():
        if line.startswith("(qemu)"):
            if "info mtree -f" in line:
                target = flat
            elif "info mtree" in line:
                target = tree
            continue
        target.append(line)
    return "\n".join(tree) + "\n", "\n".join(flat) + "\n"


def _blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    cur: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
                cur = []
            continue
        cur.append(line)
    if cur:
        blocks.append(cur)
    return blocks


def tree_blocks(text: str) -> Counter[str]:
    """Each `address-space:` group and `memory-region:` section as one string (a multiset)."""
    return Counter("\n".join(b) for b in _blocks(text))


_ACCEL = re.compile(r" (KVM|HVF|WHPX|NVMM)$")


def flat_blocks(text: str) -> Counter[str]:
    """Each FlatView block without its `FlatView #N` line, with its `AS` lines sorted, and
    without the accelerator suffix QEMU adds to ranges a hardware accelerator maps (`` KVM``):
    mmiobus has no accelerator."""
    out: Counter[str] = Counter()
    for b in _blocks(text):
        body = [_ACCEL.sub("", line) for line in b if not _FV_HEAD.match(line)]
        heads = sorted(line for line in body if line.startswith(" AS "))
        rest = [line for line in body if not line.startswith(" AS ")]
        out["\n".join(heads + rest)] += 1
    return out


def diff(expected: Counter[str], actual: Counter[str]) -> str:
    """A readable account of the blocks that differ (empty when equal)."""
    import difflib

    if expected == actual:
        return ""
    missing = list((expected - actual).elements())
    extra = list((actual - expected).elements())
    lines = []
    for m in missing:
        head = m.splitlines()[0]
        best = max(extra, key=lambda e: difflib.SequenceMatcher(None, m, e).ratio(), default="")
        lines.append(f"block {head!r} differs:")
        lines.extend(
            difflib.unified_diff(
                m.splitlines(), best.splitlines(), "qemu", "mmiobus", lineterm="", n=1
            )
        )
    for e in extra:
        if not missing:
            lines.append(f"unexpected block {e.splitlines()[0]!r}")
    return "\n".join(lines[:200])
