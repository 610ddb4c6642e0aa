#!/usr/bin/env python3
"""Run mmiobus from a fresh checkout with nothing but Python 3.11+.

    python3 dev.py serve [ARGS...]    start the bus (any `mmiobus` command works the same way)
    python3 dev.py test [PYTEST ARGS] install the test dependencies and run the whole suite
    python3 dev.py bench [ARGS...]    run the benchmarks

The first run creates ./.venv and installs mmiobus into it (editable, so later source changes
need no reinstall); it reinstalls when pyproject.toml changes, and makes .venv again when
another Python version made it. Two runs at once take turns (a lock file beside .venv).

`test` and `bench` also install the Debian packages some tests need (QEMU, OpenSBI, U-Boot,
dtc, Icarus Verilog, ...: SYSTEM_PACKAGES below) when one is missing and dev.py runs as root where
apt-get exists; if that fails, the tests that need them skip and say why. Set
MMIOBUS_NO_SYSTEM_PACKAGES=1 to skip this step.
"""

import sys

MIN_PYTHON = (3, 11)


def python_problem(version=sys.version_info):  # no annotations: this runs on any Python 3
    """The line to print when Python ``version`` cannot run mmiobus, else None."""
    if tuple(version[:2]) >= MIN_PYTHON:
        return None
    return (
        "dev.py: mmiobus needs Python {}.{} or newer, and this is Python {}; run dev.py with "
        "a newer one (e.g. python3.11 dev.py)".format(*MIN_PYTHON, ".".join(map(str, version[:3])))
    )


if python_problem() is not None:  # before anything an older Python cannot run
    sys.stderr.write(python_problem() + "\n")
    sys.exit(1)

import contextlib  # noqa: E402 - after the version check, on purpose
import hashlib  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import venv  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TextIO  # noqa: E402

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("MMIOBUS_VENV", ROOT / ".venv"))

# The Debian packages other tests use (CPU front-ends boot firmware under QEMU and on the bus,
# hardware models run under Icarus Verilog). The one list; `test` and `bench` install them.
SYSTEM_PACKAGES = [
    "opensbi",
    "u-boot-qemu",
    "device-tree-compiler",
    "qemu-system-x86",
    "qemu-system-arm",
    "qemu-system-misc",
    "iverilog",
    "openssl",  # certificates for the TLS tests
    "iproute2",  # network namespaces: devices on other hosts
    "zsh",  # only to check the syntax of `mmiobus completion zsh`
]
# pip's and apt's lines that say what they are doing now, for the progress line.
_STEPS = ("Collecting", "Downloading", "Building", "Installing", "Get:", "Unpacking", "Setting up")


def say(msg: str) -> None:
    """One line on standard error, prefixed ``dev.py:``."""
    print(f"dev.py: {msg}", file=sys.stderr, flush=True)


def python_of(venv_dir: Path) -> Path:
    """The interpreter of the virtual environment at ``venv_dir``."""
    scripts = venv_dir / ("Scripts" if os.name == "nt" else "bin")
    return scripts / ("python.exe" if os.name == "nt" else "python")


def venv_version(venv_dir: Path) -> str:
    """The Python version that made ``venv_dir`` (from its pyvenv.cfg), or "" if unknown."""
    try:
        lines = (venv_dir / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip()
    return ""


def stamp_text(extras: str) -> str:
    """What the stamp of an up-to-date install holds: pyproject.toml's hash, the extras, and
    the interpreter version."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    return f"{digest}\npython {platform.python_version()}\n"


@contextlib.contextmanager
def install_lock(venv_dir: Path) -> Iterator[None]:
    """Hold the lock file beside ``venv_dir`` (``.venv.lock``), waiting (and saying so) while
    another dev.py holds it. No lock where fcntl does not exist (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(venv_dir.parent / f"{venv_dir.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another dev.py is installing into {venv_dir}; waiting for it to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _last_step(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            tail = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((ln.strip() for ln in reversed(tail) if ln.strip().startswith(_STEPS)), "")


def run_logged(
    cmd: list[str],
    log: Path,
    what: str,
    env: dict[str, str] | None = None,
    out: TextIO | None = None,
    every: float = 10.0,
) -> int:
    """Run ``cmd`` with its output in ``log``; meanwhile show what it is doing on ``out``
    (standard error): one line rewritten in place at a terminal, else a line every
    ``every`` seconds. Returns its exit status."""
    out = out or sys.stderr
    tty = out.isatty()
    start = last = time.monotonic()
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env=env)
        while True:
            try:
                status = proc.wait(timeout=0.5 if tty else min(every, 0.5))
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            line = f"dev.py: {what} ({now - start:.0f}s) {_last_step(log)}".rstrip()
            if tty:
                width = shutil.get_terminal_size().columns - 1
                out.write("\r\x1b[K" + line[:width])
                out.flush()
            elif now - last >= every:
                out.write(line + "\n")
                out.flush()
                last = now
    if tty:
        out.write("\r\x1b[K")
        out.flush()
    return status


def _pip_install(python: Path, target: str, log: Path) -> int:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--editable", target]
    return run_logged(cmd, log, f"installing {target}")


def ensure(
    extras: str = "",
    venv_dir: Path = VENV,
    install: Callable[[Path, str, Path], int] = _pip_install,
) -> None:
    """Make the virtual environment (again, if another Python made it) and install mmiobus
    with ``extras`` into it, unless its stamp says that is done; one run at a time."""
    want = stamp_text(extras)
    stamp = venv_dir / f".mmiobus-installed{('-' + extras) if extras else ''}"
    python = python_of(venv_dir)

    def fresh() -> bool:
        return stamp.exists() and stamp.read_text() == want and python.exists()

    if fresh():
        return
    with install_lock(venv_dir):
        if fresh():  # another dev.py did it while this one waited
            return
        running = platform.python_version()
        made_by = venv_version(venv_dir)
        if python.exists() and made_by and made_by.split(".")[:2] != running.split(".")[:2]:
            say(f"{venv_dir} was made by Python {made_by}; making it again with Python {running}")
            venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
        elif not python.exists():
            say(f"creating {venv_dir} with Python {running}")
            venv.EnvBuilder(with_pip=True, clear=venv_dir.exists()).create(venv_dir)
        target = f".[{extras}]" if extras else "."
        log = venv_dir / "install.log"
        started = time.monotonic()
        say(f"installing mmiobus{target[1:]} into {venv_dir} (the whole log: {log})")
        status = install(python, target, log)
        if status:
            sys.stderr.write(log.read_text()[-4000:])
            say(f"pip failed; the whole log is in {log}")
            raise subprocess.CalledProcessError(status, "pip install")
        say(f"installed in {time.monotonic() - started:.0f}s")
        stamp.write_text(want)


def dpkg_status(package: str) -> str:
    """dpkg's status of ``package`` ("install ok installed" when it is), "" if unknown."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def _apt(cmd: list[str], log: Path, what: str) -> int:
    return run_logged(cmd, log, what, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def system_packages(
    packages: list[str] = SYSTEM_PACKAGES,
    log: Path = VENV / "apt.log",
    status: Callable[[str], str] = dpkg_status,
    apt: Callable[[list[str], Path, str], int] = _apt,
    which: Callable[[str], str | None] = shutil.which,
    root: bool | None = None,
) -> list[str]:
    """Install the ``packages`` that dpkg says are missing, with apt-get, when running as root
    where apt-get exists; one line says what, and a failure is one line too (the tests that
    need a package skip without it). Returns the packages still missing."""
    if os.environ.get("MMIOBUS_NO_SYSTEM_PACKAGES", "") not in ("", "0"):
        return []
    if which("dpkg-query") is None:
        return []  # not a Debian system: nothing to check with, nothing to install with
    missing = [p for p in packages if status(p) != "install ok installed"]
    if not missing:
        return []
    root = (hasattr(os, "geteuid") and os.geteuid() == 0) if root is None else root
    names = " ".join(missing)
    if not root or which("apt-get") is None:
        say(
            f"the tests that need {names} will skip (install with `sudo apt-get install "
            f"{names}`; MMIOBUS_NO_SYSTEM_PACKAGES=1 skips this check)"
        )
        return missing
    say(f"installing the Debian packages the tests need: {names}")
    failed = list(missing)
    if apt(["apt-get", "update", "-q"], log, "apt-get update") == 0:
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
        if apt([*install, *missing], log, "apt-get install") == 0:
            failed = []
        else:  # one unknown package fails them all: try each on its own
            failed = [p for p in missing if apt([*install, p], log, f"apt-get install {p}")]
    if failed:
        say(f"could not install {' '.join(failed)} (see {log}); the tests that need them will skip")
    return failed


def run(argv: list[str]) -> int:
    """Run one dev.py command line; returns its exit status (unless it became the command)."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print((__doc__ or "").strip())
        return 0
    command, rest = argv[0], argv[1:]
    python = python_of(VENV)
    try:
        if command in ("test", "bench"):
            ensure("test")
            with install_lock(VENV):
                system_packages()
            script = ["-m", "pytest"] if command == "test" else [str(ROOT / "bench" / "run.py")]
            cmd = [str(python), *script, *rest]
        else:
            ensure()
            cmd = [str(python.with_name("mmiobus")), command, *rest]
    except subprocess.CalledProcessError as e:
        say(f"installation failed (exit status {e.returncode})")
        return e.returncode or 1
    if command in ("test", "bench"):
        os.chdir(ROOT)  # pytest and the benchmarks find their files from the checkout
    if os.name == "nt":
        return subprocess.call(cmd)
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
