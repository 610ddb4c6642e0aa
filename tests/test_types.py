"""Every package type-checks with mypy (configured in pyproject.toml).

The packages live in folders named by concept (``memory/``, ``server/``, ...) and are mapped to
``mmiobus.*`` by pyproject.toml's package-dir; mypy finds modules by path, so the check runs on
a tree of links laid out as the installed package is.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MYPY = [sys.executable, "-m", "mypy"]


def _package_tree(into: Path) -> Path:
    """Links in ``into`` that make ``into/mmiobus`` look like the installed package."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    top = into / "mmiobus"
    top.mkdir()
    for entry in (ROOT / mapping["mmiobus"]).iterdir():
        (top / entry.name).symlink_to(entry)
    for package, folder in mapping.items():
        if package == "mmiobus":
            continue
        link = into / Path(*package.split("."))
        if not link.exists():
            link.symlink_to(ROOT / folder)
    return top


def test_mypy_finds_no_errors_in_any_package(tmp_path: Path):
    _package_tree(tmp_path)
    cache = ROOT / ".mypy_cache"
    out = subprocess.run(
        [*MYPY, "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
         "-p", "mmiobus"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success" in out.stdout
