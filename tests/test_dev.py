"""dev.py, the README's entry point, before anything is installed: it refuses an old Python in
one line, makes .venv again when another Python made it (the stamp records the interpreter),
lets one install run at a time, says what it is doing while pip works, and installs the Debian
packages the tests need (as root, where apt-get exists) or says which are missing.

dev.py is loaded as a module; pip and apt-get are stood in for where running them would
install software.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
assert spec is not None and spec.loader is not None
dev = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dev)


def old_pythons() -> list[str]:
    """Interpreters older than 3.11 on this machine."""
    found = {shutil.which(f"python3.{minor}") for minor in range(6, 11)}
    found |= set(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[6-9]*/bin/python")))
    found |= set(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python")))
    return sorted(p for p in found if p and "/shims/" not in p)


# -- the Python version --------------------------------------------------------------------------


def test_an_old_python_is_named_in_one_line():
    line = dev.python_problem((3, 10, 13, "final", 0))
    assert line.startswith("dev.py: mmiobus needs Python 3.11 or newer")
    assert "3.10.13" in line and "python3.11 dev.py" in line and "\n" not in line
    assert dev.python_problem((3, 11, 0)) is None and dev.python_problem((3, 13, 1)) is None


@pytest.mark.parametrize("python", old_pythons() or [None])
def test_dev_py_run_by_an_old_python_says_so_and_exits_1(python):
    if python is None:
        pytest.skip("no Python older than 3.11 on this machine")
    out = subprocess.run([python, str(ROOT / "dev.py"), "serve"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    [line] = out.stderr.splitlines()
    assert "needs Python 3.11 or newer" in line and out.stdout == ""


# -- the virtual environment ---------------------------------------------------------------------


class FakePip:
    """Stands in for pip: records each install, optionally failing."""

    def __init__(self, status: int = 0) -> None:
        self.calls: list[tuple[Path, str]] = []
        self.status = status

    def __call__(self, python: Path, target: str, log: Path) -> int:
        self.calls.append((python, target))
        log.write_text("Collecting nothing\n")
        return self.status


def test_a_venv_made_by_another_python_is_made_again(tmp_path, capsys):
    """A .venv whose pyvenv.cfg names another Python version is made again with this one and
    mmiobus installed anew; the stamp records the interpreter, so the next run installs
    nothing."""
    env = tmp_path / ".venv"
    venv.EnvBuilder(with_pip=False).create(env)
    cfg = env / "pyvenv.cfg"
    cfg.write_text(
        "\n".join(
            "version = 3.10.13" if line.startswith("version") else line
            for line in cfg.read_text().splitlines()
        )
    )
    pip = FakePip()
    dev.ensure("", env, pip)
    err = capsys.readouterr().err
    assert f"{env} was made by Python 3.10.13; making it again with Python" in err
    assert dev.venv_version(env) == platform.python_version()
    assert pip.calls == [(dev.python_of(env), ".")]
    assert f"python {platform.python_version()}" in (env / ".mmiobus-installed").read_text()
    dev.ensure("", env, pip)
    assert len(pip.calls) == 1  # up to date: nothing to do


def test_a_stamp_from_another_interpreter_reinstalls(tmp_path):
    env = tmp_path / ".venv"
    venv.EnvBuilder(with_pip=False).create(env)
    (env / ".mmiobus-installed-test").write_text(
        dev.stamp_text("test").replace(platform.python_version(), "3.11.0rc1")
    )
    pip = FakePip()
    dev.ensure("test", env, pip)
    assert pip.calls == [(dev.python_of(env), ".[test]")]


def test_a_failed_install_leaves_no_stamp(tmp_path, capsys):
    env = tmp_path / ".venv"
    venv.EnvBuilder(with_pip=False).create(env)
    with pytest.raises(subprocess.CalledProcessError):
        dev.ensure("", env, FakePip(status=1))
    assert not (env / ".mmiobus-installed").exists()
    assert "pip failed; the whole log is in" in capsys.readouterr().err


def test_two_installs_take_turns(tmp_path, capsys):
    """While one dev.py holds the lock beside .venv, another says it waits, and installs only
    once the first is done."""
    env = tmp_path / ".venv"
    venv.EnvBuilder(with_pip=False).create(env)
    pip = FakePip()
    worker = threading.Thread(target=dev.ensure, args=("", env, pip))
    with dev.install_lock(env):
        worker.start()
        worker.join(1.0)
        assert worker.is_alive() and pip.calls == []
    worker.join(20)
    assert not worker.is_alive() and len(pip.calls) == 1
    assert "another dev.py is installing into" in capsys.readouterr().err
    assert (tmp_path / ".venv.lock").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("out", [io.StringIO(), Terminal()], ids=["log", "terminal"])
def test_a_long_install_says_what_it_is_doing(tmp_path, out):
    """While pip runs, a progress line says how long it has been and what pip is doing: rewritten
    in place at a terminal, a line every few seconds otherwise."""
    script = "import time; print('Collecting grpcio', flush=True); time.sleep(1.6)"
    status = dev.run_logged([sys.executable, "-c", script], tmp_path / "log", "installing .",
                            out=out, every=0.5)  # fmt: skip
    assert status == 0
    text = out.getvalue()
    assert "dev.py: installing . (" in text and "Collecting grpcio" in text
    if isinstance(out, Terminal):
        assert "\r\x1b[K" in text
    else:
        assert len(text.splitlines()) >= 2


# -- Debian packages -----------------------------------------------------------------------------


class Apt:
    """Stands in for apt-get: records commands; ``fail`` lists what fails."""

    def __init__(self, *fail: str) -> None:
        self.commands: list[list[str]] = []
        self.fail = set(fail)

    def __call__(self, cmd: list[str], log: Path, what: str) -> int:
        self.commands.append(cmd)
        if cmd[1] == "update":
            return 1 if "update" in self.fail else 0
        return 1 if any(p in self.fail for p in cmd[5:]) else 0


def statuses(installed: set[str]):
    return lambda p: "install ok installed" if p in installed else ""


@pytest.fixture
def apt_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MMIOBUS_NO_SYSTEM_PACKAGES", raising=False)
    return {"log": tmp_path / "apt.log", "which": lambda name: f"/usr/bin/{name}"}


def _packages_the_tests_name() -> set[str]:
    """The Debian packages the tests' skip reasons tell people to install: after `apt-get
    install`, in ``PACKAGES = {...}`` tables and in ``need_tool(tool, package)`` calls."""
    names: set[str] = set()
    for path in Path(__file__).resolve().parent.rglob("*.py"):
        if path.name == "test_dev.py":
            continue
        text = path.read_text()
        for words in re.findall(r"apt-get install ([a-z0-9][a-z0-9.+ -]*)", text):
            names.update(w for w in words.split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w))
        for table in re.findall(r"^PACKAGES = \{(.*?)\}", text, re.S | re.M):
            names.update(re.findall(r':\s*"([a-z0-9.+-]+)"', table))
        names.update(re.findall(r'need_tool\([^,]+, "([a-z0-9.+-]+)"\)', text))
    return names


def test_dev_installs_every_package_the_tests_name():
    named = _packages_the_tests_name()
    assert {"opensbi", "device-tree-compiler"} <= named  # the scan works
    assert named <= set(dev.SYSTEM_PACKAGES), sorted(named - set(dev.SYSTEM_PACKAGES))
    assert "MMIOBUS_NO_SYSTEM_PACKAGES=1" in dev.__doc__


def test_nothing_missing_installs_nothing(apt_env, capsys):
    apt = Apt()
    assert dev.system_packages(["a", "b"], status=statuses({"a", "b"}), apt=apt, root=True,
                               **apt_env) == []  # fmt: skip
    assert apt.commands == [] and capsys.readouterr().err == ""


def test_missing_packages_are_installed_as_root_after_an_update(apt_env, capsys):
    apt = Apt()
    left = dev.system_packages(["a", "b", "c"], status=statuses({"b"}), apt=apt, root=True,
                               **apt_env)  # fmt: skip
    assert left == []
    assert apt.commands == [
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "a", "c"],
    ]
    [line] = capsys.readouterr().err.splitlines()
    assert line == "dev.py: installing the Debian packages the tests need: a c"


def test_a_package_that_cannot_install_is_one_line_and_the_rest_install(apt_env, capsys):
    apt = Apt("c")
    left = dev.system_packages(["a", "c"], status=statuses(set()), apt=apt, root=True, **apt_env)
    assert left == ["c"]
    assert apt.commands[-2:] == [
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "a"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "c"],
    ]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "could not install c" in lines[1] and "skip" in lines[1]


def test_a_failed_update_is_one_line(apt_env, capsys):
    apt = Apt("update")
    left = dev.system_packages(["a"], status=statuses(set()), apt=apt, root=True, **apt_env)
    assert left == ["a"] and len(apt.commands) == 1
    assert "could not install a" in capsys.readouterr().err.splitlines()[-1]


def test_without_root_it_says_which_are_missing_and_how_to_install_them(apt_env, capsys):
    apt = Apt()
    left = dev.system_packages(["a"], status=statuses(set()), apt=apt, root=False, **apt_env)
    assert left == ["a"] and apt.commands == []
    [line] = capsys.readouterr().err.splitlines()
    assert "sudo apt-get install a" in line and "MMIOBUS_NO_SYSTEM_PACKAGES=1" in line


def test_the_step_can_be_skipped(apt_env, monkeypatch, capsys):
    monkeypatch.setenv("MMIOBUS_NO_SYSTEM_PACKAGES", "1")

    def status(package: str) -> str:
        raise AssertionError("dpkg asked")

    assert dev.system_packages(["a"], status=status, apt=Apt(), root=True, **apt_env) == []
    assert capsys.readouterr().err == ""


def test_dpkg_status_of_an_unknown_package_is_empty():
    if shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian system")
    assert dev.dpkg_status("no-such-package-for-mmiobus") == ""


def test_test_and_bench_install_the_packages_before_running(monkeypatch):
    """`dev.py test ARGS` installs mmiobus[test], then the system packages (under the lock),
    then becomes pytest with ARGS; `dev.py serve` installs no system packages."""
    done: list[object] = []
    monkeypatch.setattr(dev, "ensure", lambda extras="": done.append(("ensure", extras)))
    monkeypatch.setattr(dev, "system_packages", lambda: done.append("packages"))
    monkeypatch.setattr(dev.os, "execv", lambda path, argv: done.append(argv))
    monkeypatch.setattr(dev.os, "chdir", lambda path: None)
    monkeypatch.setattr(dev, "install_lock", lambda path: contextlib.nullcontext())
    dev.run(["test", "-x"])
    assert done[:2] == [("ensure", "test"), "packages"]
    assert done[2][1:] == ["-m", "pytest", "-x"]
    done.clear()
    dev.run(["serve"])
    assert done[0] == ("ensure", "") and "packages" not in done
