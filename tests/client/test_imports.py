"""`import mmiobus.client` stays light: no pydantic, no YAML, no server and no machine
descriptions (a client process should not pay for what only the server and the command line
use)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pydantic", "yaml", "mmiobus.machine", "mmiobus.server", "mmiobus.cli")


def test_importing_the_client_loads_no_pydantic_yaml_server_or_machine():
    code = "import json, sys, mmiobus.client; print(json.dumps(sorted(m for m in sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(out.stdout)
    assert "mmiobus.client" in loaded
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
