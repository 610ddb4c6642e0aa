"""Where the bus listens: loopback without credentials stays as easy as ever; anywhere else
needs authentication or ``--insecure`` (which warns); unix sockets only their owner reaches."""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest
from mmiobus.client import Bus
from mmiobus.credentials import Credentials
from mmiobus.server.auth_listen import is_local
from support.auth import write_token
from support.servers import MMIOBUS, process_env, start_server


def _mode(address: str) -> int:
    return stat.S_IMODE(os.stat(address.removeprefix("unix:")).st_mode)


def test_loopback_without_credentials_is_everything_as_before(machine_server):
    server = machine_server(None)
    for address in server.addresses:
        with Bus(address, credentials=Credentials()) as bus:
            bus.write(0x1000, b"\x2a")
            assert bus.read(0x1000, 1) == b"\x2a"


def test_a_unix_socket_is_its_owners_only(machine_server):
    server = machine_server(None)
    assert _mode(server.unix) == 0o600


def test_socket_mode_opens_a_unix_socket_to_the_group(machine_server):
    server = machine_server(None, "--socket-mode", "0660")
    assert _mode(server.unix) == 0o660
    with Bus(server.unix) as bus:
        assert bus.info.version


def _serve(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`mmiobus serve ARGS` expected to stop by itself (it refuses to start)."""
    return subprocess.run([MMIOBUS, "serve", *args], capture_output=True, text=True,
                          timeout=timeout, env=process_env())  # fmt: skip


def test_listening_beyond_loopback_without_authentication_is_refused():
    out = _serve("--listen", "0.0.0.0:0")
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert "0.0.0.0:0" in line and "--auth" in line and "--insecure" in line
    assert out.stdout == ""


def test_the_ipv6_wildcard_counts_as_beyond_loopback_too():
    out = _serve("--listen", "127.0.0.1:0", "--listen", "[::]:0")
    assert out.returncode == 1
    assert "without authentication" in out.stderr


@pytest.mark.parametrize(
    ("address", "local"),
    [("127.0.0.1:7170", True), ("127.1.2.3:1", True), ("[::1]:7170", True),
     ("localhost:7170", True), ("unix:/run/bus.sock", True), ("0.0.0.0:7170", False),
     ("[::]:7170", False), ("10.0.0.1:7170", False), ("bus.example:7170", False)],
)  # fmt: skip
def test_what_counts_as_local(address, local):
    assert is_local(address) is local


def _started_then_stopped(*args: str) -> tuple[list[str], str]:
    """Start a server with ``args`` (beside a loopback listener), stop it, and return the
    addresses it printed and its log."""
    server = start_server(*args)
    try:
        addresses = server.addresses
    finally:
        assert server.stop() == 0
    return addresses, server.log()


def test_insecure_listens_beyond_loopback_and_says_so():
    _, log = _started_then_stopped("--listen", "0.0.0.0:0", "--insecure")
    assert "without authentication (--insecure)" in log


def test_a_token_file_is_authentication_enough(tmp_path):
    _, path = write_token(tmp_path, "shared")
    _, log = _started_then_stopped("--listen", "0.0.0.0:0", "--token-file", str(path))
    assert "without authentication" not in log
    assert "clear text" in log  # tokens without TLS, beyond loopback: said once


def test_a_shared_token_file_lets_its_holders_do_everything(machine_server, tmp_path):
    token, path = write_token(tmp_path, "shared")
    server = machine_server(None, "--token-file", str(path))
    with Bus(server.tcp, credentials=Credentials(token)) as bus:
        bus.write(0x1000, b"\x07")
        with bus.transaction() as t:
            t.create_region("shared-scratch", "ram", 0x1000)
    with pytest.raises(Exception, match="requires credentials"):
        Bus(server.tcp, credentials=Credentials())


def test_device_token_still_guards_devices_and_warns_that_it_shows(machine_server):
    server = machine_server(None, "--device-token", "legacy-secret")
    deadline = time.monotonic() + 10
    while "--device-token is visible" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "--device-token is visible to other local users" in server.log()
