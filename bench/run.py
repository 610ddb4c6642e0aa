"""Run the benchmarks and print their tables: `python3 dev.py bench [memory|network ...]`."""

from __future__ import annotations

import importlib
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
SUITES = ["memory", "network", "devices", "trace", "guest", "auth", "benches", "soak", "peers"]


def main(argv: list[str]) -> int:
    chosen = argv or SUITES
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(SUITES)}")
        return 2
    from mmiobus.server.logs import configure

    # What the suites run in this process (QEMU's launcher, say) says only what goes wrong:
    # structlog's default would print its debug lines among the tables.
    configure(level="warning")
    print(f"mmiobus benchmarks - Python {platform.python_version()} on {platform.machine()}")
    for name in chosen:
        t = time.perf_counter()
        print()
        print("\n".join(importlib.import_module(name).main()))
        print(f"  ({name}: {time.perf_counter() - t:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
