#!/usr/bin/env python3
"""Run mmiobus from a fresh checkout with nothing but Python 3.11+.

    python3 dev.py serve [ARGS...]    start the bus (any `mmiobus` command works the same way)
    python3 dev.py test [PYTEST ARGS] install the test dependencies and run the whole suite
    python3 dev.py bench [ARGS...]    run the benchmarks

The first run creates ./.venv and installs mmiobus into it (editable, so later source changes
need no reinstall); it reinstalls only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MMIOBUS_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _say(msg: str) -> None:
    print(f"dev.py: {msg}", file=sys.stderr, flush=True)


def ensure(extras: str = "") -> None:
    """Create the virtual environment and install mmiobus (with ``extras``) if needed."""
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".mmiobus-installed{('-' + extras) if extras else ''}"
    if stamp.exists() and stamp.read_text() == want and PYTHON.exists():
        return
    if not PYTHON.exists():
        _say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f".[{extras}]" if extras else "."
    _say(f"installing mmiobus{('[' + extras + ']') if extras else ''} into {VENV}")
    log = VENV / "install.log"
    with open(log, "w") as out:
        done = subprocess.run(
            [
                str(PYTHON),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--editable",
                target,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        sys.stderr.write(log.read_text()[-4000:])
        _say(f"pip failed; the whole log is in {log}")
        raise subprocess.CalledProcessError(done.returncode, "pip install")
    stamp.write_text(want)


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "test":
            ensure("test")
            cmd = [str(PYTHON), "-m", "pytest", *rest]
        elif command == "bench":
            ensure("test")
            cmd = [str(PYTHON), str(ROOT / "bench" / "run.py"), *rest]
        else:
            ensure()
            cmd = [str(BIN / "mmiobus"), command, *rest]
    except subprocess.CalledProcessError as e:
        _say(f"installation failed (exit status {e.returncode})")
        return e.returncode or 1
    if command in ("test", "bench"):
        os.chdir(ROOT)  # pytest and the benchmarks find their files from the checkout
    if os.name == "nt":
        return subprocess.call(cmd)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
