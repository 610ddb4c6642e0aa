"""The ``mmiobus`` command line, run in this process: ``mmiobus.cli.main.main(argv)`` with its
standard streams captured and its environment set per call. (``test_smoke.py`` runs the
installed script as a subprocess, the way users run it.)"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from mmiobus.cli.main import main
from mmiobus.client import Bus
from support.servers import ServerFactory, ServerProcess


@dataclass
class Ran:
    """How a command line ended: its exit status, standard output (bytes, for raw reads) and
    standard error (text)."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def output(self) -> str:
        """Standard output as text."""
        return self.stdout.decode()

    def text(self) -> str:
        """Standard output as text, asserting the command succeeded."""
        assert self.returncode == 0, self.stderr
        return self.stdout.decode()

    def one_error_line(self) -> str:
        """The single line of standard error (asserting there is exactly one, and no
        traceback)."""
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        return lines[0]

    def error_lines(self) -> list[str]:
        """The lines of standard error that report an error (``mmiobus CMD: error: ...``; a
        usage error also prints the usage), asserting there is no traceback."""
        assert "Traceback" not in self.stderr, self.stderr
        return [line for line in self.stderr.splitlines() if ": error: " in line]


Run = Callable[..., Ran]


@pytest.fixture
def mmiobus(capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``mmiobus(*args, stdin=b"", env={})``: run one command line in this process and return
    a ``Ran``. ``$MMIOBUS_SERVER`` is unset unless ``env`` sets it (each test names its
    server)."""
    monkeypatch.delenv("MMIOBUS_SERVER", raising=False)

    def run(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Ran:
        capsysbinary.readouterr()  # what came before is not this command's
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            m.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
            status = main(list(args))
        out, err = capsysbinary.readouterr()
        return Ran(status, out, err.decode())

    return run


# -- a server for the commands that talk to one ----------------------------------------------

# RAM at 0 (1 MiB), a ROM, a disabled region, nothing at 0x30000000, and a second address space
# `dma` whose address 0 is RAM byte 0x80000.
MACHINE = """\
endianness: little
address_spaces:
  - {name: memory, root: system}
  - {name: dma, root: dma-root}
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 1 MiB}
      - {name: rom, kind: rom, addr: 0x10000000, size: 0x1000}
      - {name: spare, kind: ram, addr: 0x50000000, size: 0x1000, enabled: false}
  - name: dma-root
    kind: container
    size: 2**32
    subregions:
      - {name: dma-window, kind: alias, target: ram, offset: 0x80000, size: 0x80000}
"""


@pytest.fixture(scope="module")
def cli_server(machine_server: ServerFactory) -> ServerProcess:
    """A server on MACHINE for the test module."""
    return machine_server(MACHINE)


@pytest.fixture(scope="module")
def big_server(machine_server: ServerFactory) -> ServerProcess:
    """The same machine, big-endian."""
    return machine_server(MACHINE.replace("endianness: little", "endianness: big"))


@pytest.fixture(scope="module")
def srv(cli_server: ServerProcess) -> str:
    """The server's TCP address."""
    return cli_server.tcp


@pytest.fixture(params=["tcp", "unix"])
def any_address(request: pytest.FixtureRequest, cli_server: ServerProcess) -> str:
    """The server's address over TCP, then over a unix socket."""
    return cli_server.tcp if request.param == "tcp" else cli_server.unix


@pytest.fixture(scope="module")
def bus(cli_server: ServerProcess) -> Iterator[Bus]:
    """A client on the server, to check what the commands did."""
    with Bus(cli_server.tcp) as b:
        yield b
