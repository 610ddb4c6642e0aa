"""The --auth file and the credentials clients load: every mistake is one line naming the file,
line and column (or the option or variable), and secrets never sit in the file itself."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from mmiobus.credentials import Credentials, CredentialsError
from mmiobus.server.auth import Role
from mmiobus.server.auth_file import AuthFileError, load_policy
from support.command_line import mmiobus
from support.servers import MMIOBUS


def _policy(tmp_path, text: str, **env: str):
    path = tmp_path / "auth.yaml"
    path.write_text(text)
    return load_policy(path, environ=env)


def _error(tmp_path, text: str, **env: str) -> str:
    with pytest.raises(AuthFileError) as e:
        _policy(tmp_path, text, **env)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_identities_by_token_file_variable_digest_and_certificate(tmp_path):
    (tmp_path / "ops.token").write_text("ops-secret\n")
    digest = hashlib.sha256(b"bench-secret").hexdigest()
    policy = _policy(
        tmp_path,
        f"""identities:
  - {{name: ops, token_file: ops.token, roles: [all]}}
  - {{name: bench, token_sha256: {digest}, roles: [read, write]}}
  - {{name: dev, token_env: DEV_TOKEN, roles: [device], device: {{names: [uart*]}}}}
  - {{name: cpu0, certificate: {{common_name: cpu0}}, roles: [read]}}
anonymous: [read]
""",
        DEV_TOKEN="dev-secret",
    )
    assert policy.by_token("ops-secret").roles == frozenset(Role)
    assert policy.by_token("bench-secret").roles == {Role.READ, Role.WRITE}
    dev = policy.by_token("dev-secret")
    assert dev.device.may_be("uart0") and not dev.device.may_be("timer0")
    assert policy.by_token("nobody's") is None
    assert policy.by_certificate({"x509_subject": [b"CN=cpu0"], "x509_common_name": [b"cpu0"]})
    assert policy.anonymous.roles == {Role.READ} and not policy.anonymous.authenticated


@pytest.mark.parametrize(
    ("text", "line", "at", "words"),
    [
        ("identities:\n  - {name: a, token: x, roles: [read]}\n", 2, "{name", "token_file"),
        ("identities:\n  - {name: a, token_file: a.token, roles: [reed]}\n", 2, "reed",
         "'reed'"),
        ("identities:\n  - {name: a, roles: [read]}\n", 2, "{name", "token_file"),
        ("identities:\n  - {name: a, token_sha256: abc, roles: [read]}\n", 2, "abc", "pattern"),
        ("identities:\n  - {name: a, token_env: NOPE_TOKEN, roles: [read]}\n", 2, "NOPE",
         "$NOPE_TOKEN is not set"),
        ("identities:\n  - {name: a, token_file: nope.token, roles: [read]}\n", 2, "nope",
         "cannot read the token"),
        ("identities: [{name: a, certificate: {}, roles: []}]\n", 1, "{}", "common_name"),
        ("identities: [{name: a, certificate: {dns: a}, roles: []},\n"
         "              {name: a, certificate: {dns: b}, roles: []}]\n", 2, "a,",
         "also identities[0]"),
        ("anonymous: [read]\nextra: 1\n", 2, "1", "unknown field"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_naming_where(tmp_path, text, line, at, words):
    column = text.splitlines()[line - 1].index(at) + 1
    message = _error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'auth.yaml'}:{line}:{column}: "), message
    assert words in message


def test_a_file_that_is_not_yaml_is_one_line(tmp_path):
    message = _error(tmp_path, "identities: [\n")
    assert message.startswith(str(tmp_path / "auth.yaml")) and "not valid YAML" in message


def test_two_identities_with_one_token_are_refused(tmp_path):
    (tmp_path / "t").write_text("same")
    message = _error(tmp_path, "identities:\n  - {name: a, token_file: t, roles: [read]}\n"
                               "  - {name: b, token_file: t, roles: [all]}\n")  # fmt: skip
    assert "the same token as identity 'a'" in message


def test_serve_says_what_is_wrong_with_the_auth_file_in_one_line(tmp_path):
    path = tmp_path / "auth.yaml"
    path.write_text("identities:\n  - {name: a, token: hunter2, roles: [read]}\n")
    out = subprocess.run([MMIOBUS, "serve", "--listen", "127.0.0.1:0", "--auth", str(path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert f"{path}:2:5:" in line


def test_credentials_come_from_options_before_the_environment(tmp_path):
    token = tmp_path / "token"
    token.write_text("from-file\n")
    env = {"MMIOBUS_TOKEN": "from-env"}
    assert Credentials.load(token_file=str(token), environ=env).token == "from-file"
    assert Credentials.load(environ=env).token == "from-env"
    assert Credentials.load(environ={"MMIOBUS_TOKEN_FILE": str(token)}).token == "from-file"
    assert Credentials.load(environ={}) == Credentials()


@pytest.mark.parametrize(
    ("kwargs", "env", "words"),
    [
        ({"token_file": "/nonexistent/token"}, {}, "--token-file /nonexistent/token"),
        ({}, {"MMIOBUS_TOKEN": "has space"}, "$MMIOBUS_TOKEN"),
        ({}, {"MMIOBUS_TLS_CA": "/nonexistent/ca.pem"}, "$MMIOBUS_TLS_CA"),
    ],
)
def test_a_credential_that_cannot_be_used_names_its_source(kwargs, env, words):
    with pytest.raises(CredentialsError, match=words.replace("$", r"\$")):
        Credentials.load(environ=env, **kwargs)


def test_a_client_certificate_needs_its_key(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(CredentialsError, match="--tls-key"):
        Credentials.load(tls_cert=str(cert), environ={})


def test_a_command_with_an_unreadable_token_file_says_so_in_one_line():
    out = mmiobus("info", "-s", "127.0.0.1:1", "--token-file", "/nonexistent/token")
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert "--token-file /nonexistent/token" in line


def _commands_with_a_server():
    import argparse

    from mmiobus.cli.main import build_parser

    def walk(parser, path):
        options = {o for a in parser._actions for o in a.option_strings}
        if "--server" in options:
            yield " ".join(path), options
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, (*path, name))

    return dict(walk(build_parser(), ("mmiobus",)))


COMMANDS = _commands_with_a_server()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_that_reaches_a_bus_takes_the_credential_options(command):
    assert {"--token-file", "--tls-ca", "--tls-cert", "--tls-key"} <= COMMANDS[command]
