"""A bench's credentials, handed to the bus and its processes the way each reads them — from
files and the environment, never on a command line (which every local user can read):

- the bus: ``serve --auth FILE`` (identities and roles) when the bench gives ``auth``, else
  ``serve --token-file FILE`` (one token every caller must present) when it gives a ``token``;
- each process: ``$MMIOBUS_TOKEN_FILE`` (a file) or ``$MMIOBUS_TOKEN`` (from the variable the
  bench names), its own ``token`` or else the bench's;
- under Compose, every secret is a Compose secret, mounted at ``/run/secrets/NAME``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmiobus.machine.errors import Path_

from .load import Bench
from .processes import Secret

TOKEN, TOKEN_FILE = "MMIOBUS_TOKEN", "MMIOBUS_TOKEN_FILE"
SECRETS = "/run/secrets"


class CredentialError(ValueError):
    """A secret the bench names cannot be had; the message says where the bench names it."""


def _token_secrets(bench: Bench) -> list[tuple[str, Path_, Secret]]:
    """(process name or "" for the bench's, where the bench says it, the secret)."""
    out: list[tuple[str, Path_, Secret]] = []
    if bench.spec.credentials.token is not None:
        out.append(("", ("credentials", "token"), bench.spec.credentials.token))
    for name, p in bench.spec.processes.items():
        if p.token is not None:
            out.append((name, ("processes", name, "token"), p.token))
    return out


def read_secret(bench: Bench, where: Path_, secret: Secret) -> str:
    """The secret's value, now; ``CredentialError`` saying why not."""
    if secret.env is not None:
        value = os.environ.get(secret.env, "").strip()
        if not value:
            raise CredentialError(f"{bench.where(where)}: the environment variable {secret.env} "
                                  "is not set")  # fmt: skip
        return value
    assert secret.file is not None
    path = bench.resolve(secret.file)
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "it is not text"
        raise CredentialError(f"{bench.where(where)}: cannot read {path}: {why}") from None
    if not value:
        raise CredentialError(f"{bench.where(where)}: {path} is empty")
    return value


@dataclass
class LocalCredentials:
    """The credentials of a bench run as processes here (``mmiobus up``)."""

    bus_options: list[str] = field(default_factory=list)
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # by process; "" the default
    token: str | None = None  # what ``up`` itself presents

    def for_process(self, name: str) -> dict[str, str]:
        """The environment that gives process ``name`` its token."""
        return dict(self.env.get(name, self.env.get("", {})))

    def client(self) -> Any:
        """``mmiobus.credentials.Credentials`` for ``up``'s own calls."""
        from mmiobus.credentials import Credentials

        return Credentials(token=self.token or "")


def local_credentials(bench: Bench, rundir: Path) -> LocalCredentials:
    """Read and check every secret now; a token the bus requires that comes from the
    environment is written (private) into ``rundir`` for ``serve --token-file``."""
    out = LocalCredentials()
    bus_token_file: str | None = None
    for name, where, secret in _token_secrets(bench):
        value = read_secret(bench, where, secret)
        if secret.file is not None:
            path = str(bench.resolve(secret.file))
            out.env[name] = {TOKEN_FILE: path}
        else:
            path = str(rundir / "token")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value + "\n")
            out.env[name] = {TOKEN: value}
        if not name:
            out.token, bus_token_file = value, path
    auth = bench.spec.credentials.auth
    if auth is not None:
        auth_path = bench.resolve(auth)
        if not auth_path.is_file():
            at = bench.where(("credentials", "auth"))
            raise CredentialError(f"{at}: there is no file {auth_path}")
        out.bus_options = ["--auth", str(auth_path)]
    elif bus_token_file is not None:
        out.bus_options = ["--token-file", bus_token_file]
    return out


@dataclass
class ComposeCredentials:
    """The bench's credentials under Compose: its ``secrets``, which service ``uses`` which,
    the bus's options and each process's environment (secrets at ``/run/secrets``)."""

    secrets: dict[str, Any] = field(default_factory=dict)
    uses: dict[str, list[str]] = field(default_factory=dict)
    bus_options: list[str] = field(default_factory=list)
    env: dict[str, dict[str, str]] = field(default_factory=dict)


def compose_credentials(bench: Bench, relative: Any) -> ComposeCredentials:
    """``relative(path)``: a path as the Compose file writes it."""
    out = ComposeCredentials()
    credentials = bench.spec.credentials

    def secret(key: str, s: Secret) -> None:
        if s.file is not None:
            out.secrets[key] = {"file": relative(bench.resolve(s.file))}
        else:
            out.secrets[key] = {"environment": s.env}

    if credentials.token is not None:
        secret("mmiobus-token", credentials.token)
    for name, p in bench.spec.processes.items():
        key = None
        if p.token is not None:
            key = f"mmiobus-token-{name}"
            secret(key, p.token)
        elif credentials.token is not None:
            key = "mmiobus-token"
        if key is not None:
            out.uses[name] = [key]
            out.env[name] = {TOKEN_FILE: f"{SECRETS}/{key}"}
    if credentials.auth is not None:
        out.secrets["mmiobus-auth"] = {"file": relative(bench.resolve(credentials.auth))}
        out.uses["bus"] = ["mmiobus-auth"]
        out.bus_options = ["--auth", f"{SECRETS}/mmiobus-auth"]
    elif credentials.token is not None:
        out.uses["bus"] = ["mmiobus-token"]
        out.bus_options = ["--token-file", f"{SECRETS}/mmiobus-token"]
    return out
