"""TLS and mutual TLS with certificates made for the test (openssl): a client trusts the bus
by its CA; with --tls-client-ca every TLS caller presents a certificate, and the --auth file
names identities by it. Device processes and the command line take the same credentials."""

from __future__ import annotations

import queue
import subprocess
import threading

import grpc
import pytest
from mmiobus.client import Bus, PermissionDenied, ServerUnavailable
from mmiobus.credentials import Credentials
from support.auth import make_pki, write_auth_file, write_token
from support.command_line import MMIOBUS, command_env, mmiobus
from support.devices import start_device

TIMER = "mmiobus.devices.models.timer:Timer"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), clients=["cpu0", "intruder"])


def _tls(pki, client: str | None = None, token: str = "") -> Credentials:
    cert = key = None
    if client is not None:
        cert_path, key_path = pki.client(client)
        cert, key = cert_path.read_bytes(), key_path.read_bytes()
    return Credentials(token, True, pki.ca.read_bytes(), cert, key)


@pytest.fixture(scope="module")
def tls_bus(machine_server, pki, tmp_path_factory):
    """TLS on TCP, a shared token."""
    token, path = write_token(tmp_path_factory.mktemp("tls"), "shared")
    server = machine_server(None, "--tls-cert", str(pki.server_cert), "--tls-key",
                            str(pki.server_key), "--token-file", str(path))  # fmt: skip
    return server, token


def test_a_client_that_trusts_the_ca_reads_over_tls(tls_bus, pki):
    server, token = tls_bus
    with Bus(server.tcp, credentials=_tls(pki, token=token)) as bus:
        bus.write(0x1000, b"\x01\x02")
        assert bus.read(0x1000, 2) == b"\x01\x02"


def test_a_plain_text_client_cannot_talk_to_a_tls_bus(tls_bus):
    server, token = tls_bus
    with pytest.raises(ServerUnavailable):
        Bus(server.tcp, credentials=Credentials(token), timeout=5)


def test_a_client_that_does_not_trust_the_bus_is_refused(tls_bus, tmp_path):
    server, token = tls_bus
    other = make_pki(tmp_path / "other", ca_name="other-ca")
    with pytest.raises(ServerUnavailable, match="its certificate is not one the CA you trust"):
        Bus(server.tcp, credentials=Credentials(token, True, other.ca.read_bytes()), timeout=5)


def test_a_tls_client_of_a_plain_text_bus_is_told_so(machine_server, pki):
    server = machine_server(None)
    with pytest.raises(ServerUnavailable, match="it does not speak TLS"):
        Bus(server.tcp, credentials=Credentials("", True, pki.ca.read_bytes()), timeout=5)


def test_the_unix_socket_stays_plain_text_and_still_asks_for_the_token(tls_bus, pki):
    server, token = tls_bus
    with Bus(server.unix, credentials=_tls(pki, token=token)) as bus:
        assert bus.read(0x1000, 1)
    with pytest.raises(PermissionDenied):
        Bus(server.unix, credentials=Credentials())


def test_the_command_line_takes_the_ca_and_a_token_file(tls_bus, pki, tmp_path):
    server, token = tls_bus
    path = tmp_path / "token"
    path.write_text(token)
    out = mmiobus("read", "-s", server.tcp, "--tls-ca", str(pki.ca), "--token-file",
                  str(path), "0x1000", "2")  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = mmiobus("read", "-s", server.tcp, "--token-file", str(path), "0x1000", "2")
    assert out.returncode == 1
    assert "closed the connection at once: a bus that requires TLS (give --tls-ca)" in out.stderr


@pytest.fixture(scope="module")
def mutual(machine_server, pki, tmp_path_factory):
    """Mutual TLS; identities by certificate."""
    folder = tmp_path_factory.mktemp("mtls")
    auth = write_auth_file(
        folder,
        [{"name": "cpu0", "certificate": {"common_name": "cpu0"}, "roles": ["read", "device"],
          "device": {"names": ["timer0"], "claims": ["timer0"]}}],
    )  # fmt: skip
    return machine_server(None, "--tls-cert", str(pki.server_cert), "--tls-key",
                          str(pki.server_key), "--tls-client-ca", str(pki.ca),
                          "--auth", str(auth))  # fmt: skip


def test_mutual_tls_names_the_identity_by_its_certificate(mutual, pki):
    with Bus(mutual.tcp, credentials=_tls(pki, "cpu0")) as cpu0:
        assert cpu0.read(0x1000, 4)
        with pytest.raises(PermissionDenied, match="'cpu0'"):
            cpu0.write(0x1000, b"\x00")


def test_a_certificate_the_policy_does_not_name_is_no_one(mutual, pki):
    with pytest.raises(PermissionDenied, match="requires credentials") as refused:
        Bus(mutual.tcp, credentials=_tls(pki, "intruder"))
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_mutual_tls_refuses_a_connection_without_a_certificate(mutual, pki):
    with pytest.raises(ServerUnavailable):
        Bus(mutual.tcp, credentials=_tls(pki), timeout=5)


def test_a_device_process_attaches_with_its_certificate_from_the_environment(mutual, pki):
    cert, key = pki.client("cpu0")
    env = {"MMIOBUS_TLS_CA": str(pki.ca), "MMIOBUS_TLS_CERT": str(cert),
           "MMIOBUS_TLS_KEY": str(key)}  # fmt: skip
    device = start_device(TIMER, mutual.tcp, "--claim", "timer0", name="timer0", env=env)
    try:
        with Bus(mutual.tcp, credentials=_tls(pki, "cpu0")) as bus:
            assert any(d.name == "timer0" for d in bus.devices())
    finally:
        device.stop()


def test_a_key_that_is_not_the_certificates_is_one_line(pki):
    _, other_key = pki.client("intruder")
    out = mmiobus("serve", "--listen", "127.0.0.1:0", "--tls-cert", str(pki.server_cert),
                  "--tls-key", str(other_key))  # fmt: skip
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert "--tls-key" in line and "not a certificate and its key" in line


@pytest.fixture(scope="module")
def optional(machine_server, pki, tmp_path_factory):
    """Mutual TLS optional: certificates at the --mtls-listen port, TLS and tokens at the
    --listen one; one --auth file names identities both ways."""
    folder = tmp_path_factory.mktemp("optional")
    token, token_path = write_token(folder, "bench")
    auth = write_auth_file(
        folder,
        [{"name": "bench", "token_file": str(token_path), "roles": ["read", "write"]},
         {"name": "cpu0", "certificate": {"common_name": "cpu0"}, "roles": ["read"]}],
    )  # fmt: skip
    server = machine_server(None, "--tls-cert", str(pki.server_cert), "--tls-key",
                            str(pki.server_key), "--tls-client-ca", str(pki.ca), "--auth",
                            str(auth), "--mtls-listen", "127.0.0.1:0")  # fmt: skip
    [mtls] = server.mtls
    return server, mtls, token


def test_optional_mutual_tls_names_a_certificate_at_its_own_port(optional, pki):
    server, mtls, _ = optional
    assert mtls != server.tcp
    with Bus(mtls, credentials=_tls(pki, "cpu0")) as cpu0:
        assert cpu0.read(0x1000, 4)
        with pytest.raises(PermissionDenied, match="'cpu0'"):
            cpu0.write(0x1000, b"\x00")
    with pytest.raises(ServerUnavailable, match="or a client certificate"):  # required there
        Bus(mtls, credentials=_tls(pki, token=optional[2]), timeout=5)


def test_optional_mutual_tls_takes_tokens_over_tls_without_a_certificate(optional, pki):
    server, _, token = optional
    with Bus(server.tcp, credentials=_tls(pki, token=token)) as bench:
        bench.write(0x1000, b"\x05")
        assert bench.read(0x1000, 1) == b"\x05"
    # There the bus asks for no certificate: one presented names no one.
    with pytest.raises(PermissionDenied, match="requires credentials") as refused:
        Bus(server.tcp, credentials=_tls(pki, "cpu0"))
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--mtls-listen", "127.0.0.1:0"], "--mtls-listen needs --tls-client-ca"),
     (["--mtls-listen", "unix:/tmp/x.sock"], "mutual TLS is for TCP")],
)  # fmt: skip
def test_mtls_listen_without_its_ca_or_on_a_unix_socket_is_one_line(flags, message, pki):
    out = mmiobus("serve", "--listen", "127.0.0.1:0", "--tls-cert", str(pki.server_cert),
                  "--tls-key", str(pki.server_key), *flags)  # fmt: skip
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()[-1:]
    assert message in line


def test_with_optional_mutual_tls_the_other_ports_still_need_authentication(pki):
    out = mmiobus("serve", "--listen", "0.0.0.0:0", "--tls-cert", str(pki.server_cert),
                  "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca),
                  "--mtls-listen", "127.0.0.1:0")  # fmt: skip
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert "refusing to listen on 0.0.0.0:" in line
    assert "--auth FILE (tokens and roles) for the ports that are not --mtls-listen" in line


def test_a_device_that_cannot_connect_says_why_as_it_retries(tls_bus):
    """Without --tls-ca, a device process keeps retrying a TLS bus, and each retry says what
    the closed connection most likely means."""
    server, _token = tls_bus
    device = subprocess.Popen(
        [MMIOBUS, "device", "run", TIMER, "--server", server.tcp, "--at", "0x3000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=command_env(),
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in device.stderr], daemon=True).start()
    try:
        line = ""
        while "cannot reach the bus; retrying" not in line:
            line = lines.get(timeout=30)
    finally:
        device.kill()
        device.wait(10)
    assert "a bus that requires TLS (give --tls-ca)" in line


def test_a_cpu_that_cannot_connect_says_why(tls_bus):
    server, _token = tls_bus
    out = mmiobus("cpu", "run", "--server", server.tcp, "--no-reconnect")
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"mmiobus cpu: error: the server at {server.tcp} closed the connection")
