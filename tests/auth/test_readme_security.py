"""The README's Security section works as written: its --auth file loads and says what the
prose says, its commands parse, and its Compose services are valid command lines."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from mmiobus.cli.main import build_parser
from mmiobus.server.auth import Role
from mmiobus.server.auth_file import load_policy

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README.split("## Security", 1)[1].split("\n## ", 1)[0]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", SECTION, flags=re.S)


def test_the_auth_file_example_loads_with_the_roles_it_shows(tmp_path):
    [example] = [b for b in _blocks("yaml") if "identities:" in b]
    (tmp_path / "auth.yaml").write_text(example)
    tokens = {}
    for name in ("operator", "bench", "uart0"):
        tokens[name] = f"{name}-token-of-the-readme"
        (tmp_path / f"{name}.token").write_text(tokens[name] + "\n")
    policy = load_policy(tmp_path / "auth.yaml")
    assert policy.by_token(tokens["operator"]).roles == frozenset(Role)
    assert policy.by_token(tokens["bench"]).roles == {Role.READ, Role.WRITE}
    uart0 = policy.by_token(tokens["uart0"])
    assert uart0.device.may_claim("uart0") and not uart0.device.may_claim("timer0")
    assert uart0.device.may_register("memory", "", 0x10003000, 0x1000)
    assert not uart0.device.may_register("memory", "", 0x10004000, 0x1000)
    cert = {"x509_subject": [b"CN=cpu0"], "x509_common_name": [b"cpu0"]}
    assert policy.by_certificate(cert).roles == {Role.DEVICE, Role.READ, Role.WRITE}
    assert not policy.anonymous.roles


def test_the_serve_commands_parse():
    [block] = [b for b in _blocks("sh") if "mmiobus serve" in b]
    text = re.sub(r"\\\n\s*", " ", block)  # join continued lines
    commands = [line.split("#")[0].strip() for line in text.splitlines()]
    commands = [c for c in commands if c.startswith("mmiobus serve")]
    assert len(commands) == 4
    parsed = [build_parser().parse_args(shlex.split(command)[1:]) for command in commands]
    assert [bool(args.mtls_listen) for args in parsed] == [False, False, False, True]


def test_the_compose_services_present_the_token_from_a_secret():
    [block] = [b for b in _blocks("yaml") if "secrets:" in b]
    compose = yaml.safe_load(block)
    path = "/run/secrets/mmiobus-token"
    bus = build_parser().parse_args(compose["services"]["bus"]["command"])
    assert bus.token_file == path
    uart0 = compose["services"]["uart0"]
    build_parser().parse_args(uart0["command"])
    assert uart0["environment"]["MMIOBUS_TOKEN_FILE"] == path
    for service in compose["services"].values():
        assert service["secrets"] == ["mmiobus-token"]
