"""Regenerate the Python modules and .pyi stubs next to the .proto files.

    python proto/generate.py            # rewrite proto/mmiobus/v1/*_pb2*.py(i)
    python proto/generate.py --check    # exit 1 if any committed module is stale

Uses grpcio-tools (pinned in pyproject.toml's test extra, so the output is reproducible).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = PROTO_ROOT / "mmiobus" / "v1"


def generate(out: Path) -> list[Path]:
    """Run protoc on every .proto into ``out``; returns the generated files (relative)."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PACKAGE.glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    status = protoc.main(
        [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ]
    )
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    return sorted(p.relative_to(out) for p in out.rglob("*_pb2*.py*"))


def stale() -> list[str]:
    """Generated files that differ from (or are missing next to) the .proto files."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        problems = []
        for rel in generate(out):
            committed = PROTO_ROOT / rel
            if not committed.exists():
                problems.append(f"{rel} is missing")
            elif committed.read_bytes() != (out / rel).read_bytes():
                problems.append(f"{rel} is stale")
        return problems


def main(argv: list[str]) -> int:
    if "--check" in argv:
        problems = stale()
        for p in problems:
            print(p)
        return 1 if problems else 0
    generate(PROTO_ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
