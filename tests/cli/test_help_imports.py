"""`mmiobus --help` stays quick: building the parser imports no gRPC, protobuf, pydantic, YAML or
structlog; each command imports what it needs when it runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("grpc", "google", "pydantic", "yaml", "structlog", "mmiobus.machine", "mmiobus.client")


def test_building_the_parser_imports_nothing_heavy():
    code = (
        "import json, sys; from mmiobus.cli.main import build_parser; "
        "build_parser().format_help(); print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(out.stdout)
    assert "mmiobus.cli.main" in loaded
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)] == []
