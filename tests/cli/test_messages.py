"""Mistakes that used to pass in silence or with someone else's words: each is one line that
says what was wrong and what to do, with exit status 1 (error) or 2 (usage). Run in this
process (``main(argv)``), except where gRPC's own logging is the subject (the installed script,
as users run it).
"""

from __future__ import annotations

import socket
import subprocess

import pytest
from mmiobus.server import logs
from support.command_line import command_env
from support.servers import MMIOBUS


@pytest.fixture
def quiet_logging(monkeypatch):
    monkeypatch.setattr(logs, "configure", lambda *a: None)


@pytest.fixture
def taken_port():
    """A loopback port something listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_serve_on_a_port_in_use_says_so_and_what_to_do(mmiobus, quiet_logging, taken_port):
    out = mmiobus("serve", "--listen", f"127.0.0.1:{taken_port}")
    assert out.returncode == 1
    line = out.one_error_line()
    assert f"127.0.0.1:{taken_port}" in line and "already listens" in line and "--listen" in line


@pytest.mark.parametrize(
    "address, words",
    [
        ("unix:/nonexistent/folder/bus.sock", ["there is no folder /nonexistent/folder"]),
        ("192.0.2.1:7170", ["not an address of this host"]),
        ("no-such-host.invalid:7170", ["no host called 'no-such-host.invalid'"]),
    ],
)
def test_serve_where_it_cannot_listen_says_why(mmiobus, quiet_logging, address, words):
    out = mmiobus("serve", "--listen", address)
    assert out.returncode == 1
    line = out.one_error_line()
    for word in words:
        assert word in line


def test_grpc_core_logs_nothing_before_the_error(taken_port):
    """The installed script: gRPC's C core prints no line of its own before ours (it used to
    print `E... add_port.cc ...`)."""
    env = command_env()
    env.pop("GRPC_VERBOSITY", None)
    out = subprocess.run(
        [MMIOBUS, "serve", "--listen", f"127.0.0.1:{taken_port}", "--log-level", "error"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.splitlines() == [out.stderr.strip()], out.stderr
    assert out.stderr.startswith("mmiobus serve: error: cannot listen on")


def test_replay_of_an_empty_recording_is_one_line(mmiobus, srv, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    out = mmiobus("replay", str(path), "-s", srv)
    assert out.returncode == 1
    line = out.one_error_line()
    assert str(path) in line and "no client access" in line and "mmiobus trace" in line


def test_apply_of_no_operations_is_one_line(mmiobus, srv, bus):
    before = bus.topology(flat_views=False).generation
    out = mmiobus("apply", "-", "-s", srv, stdin=b"[]\n")
    assert out.returncode == 1
    assert "no operations" in out.one_error_line()
    assert bus.topology(flat_views=False).generation == before


def test_an_unknown_address_space_names_those_there_are(mmiobus, srv):
    out = mmiobus("write", "-a", "nowhere", "0", "00", "-s", srv)
    assert out.returncode == 1
    line = out.one_error_line()
    assert "'nowhere'" in line and "memory, dma" in line


def test_a_limit_out_of_range_names_its_option(mmiobus, quiet_logging):
    out = mmiobus("serve", "--max-access-bytes", "0", "--listen", "127.0.0.1:0")
    assert out.returncode == 1
    line = out.one_error_line()
    assert "--max-access-bytes" in line and "max_access_bytes" not in line


def test_a_negative_grace_is_a_usage_error(mmiobus):
    out = mmiobus("serve", "--grace", "-1")
    assert out.returncode == 2
    assert "--grace" in out.error_lines()[0]
