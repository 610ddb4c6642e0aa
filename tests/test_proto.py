"""The wire contract: generated modules are current, and every message and field is explained."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted((ROOT / "proto" / "mmiobus" / "v1").glob("*.proto"))


def test_generated_modules_match_the_proto_files():
    """proto/generate.py --check regenerates into a temporary folder and compares."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"stale generated code (run proto/generate.py):\n{out.stdout}"


def _declarations(text: str):
    """(line number, declaration, the comment lines just above it) for every message, enum,
    service, rpc, field and enum value."""
    lines = text.splitlines()
    decl = re.compile(
        r"^\s*(message|enum|service|rpc|oneof)\s+\w+|"
        r"^\s*(repeated\s+|optional\s+)?[\w.]+\s+\w+\s*=\s*\d+\s*;|"
        r"^\s*map<[^>]+>\s+\w+\s*=\s*\d+\s*;|"
        r"^\s*[A-Z][A-Z0-9_]*\s*=\s*\d+\s*;"
    )
    for i, line in enumerate(lines):
        if decl.match(line):
            j = i - 1
            comments = []
            while j >= 0 and lines[j].strip().startswith("//"):
                comments.append(lines[j])
                j -= 1
            yield i + 1, line.strip(), comments


def test_every_message_field_and_rpc_has_a_comment():
    missing = []
    for path in PROTOS:
        for lineno, line, comments in _declarations(path.read_text()):
            if line.startswith("oneof"):
                continue
            if not comments:
                missing.append(f"{path.name}:{lineno}: {line}")
    assert missing == [], "declarations without a comment:\n" + "\n".join(missing)


def test_the_package_is_mmiobus_v1():
    for path in PROTOS:
        assert "package mmiobus.v1;" in path.read_text()
