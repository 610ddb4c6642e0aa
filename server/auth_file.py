"""The file ``mmiobus serve --auth FILE`` reads: who may use the bus and what each may do.

::

    identities:
      - name: operator
        token_file: operator.token        # relative to this file; or token_env: VARIABLE,
        roles: [all]                      # or token_sha256: (64 hex digits of its SHA-256)
      - name: bench
        token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        roles: [read, write]
      - name: uart0
        token_env: UART0_TOKEN
        roles: [device]
        device:
          names: [uart0]                  # device names it may attach as (globs; default: any)
          claims: [uart0]                 # described regions it may claim (globs; default: any)
          register:                       # where it may register regions (default: nowhere)
            - {address_space: memory, addr: 0x10003000, size: 4K}
      - name: cpu0
        certificate: {common_name: cpu0}  # a client certificate (serve --tls-client-ca)
        roles: [device, read, write]
    anonymous: []                         # roles of callers without credentials

Roles: read, write, trace, topology, device, admin, or all (``mmiobus.server.auth.Role``).
Every error is one line, ``FILE:LINE:COL: field: what is wrong``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from mmiobus.credentials import CredentialsError, read_token_file
from mmiobus.machine.errors import DescriptionError, Path_
from mmiobus.machine.fields import U64, Size, Strict
from mmiobus.machine.problems import problems_of
from mmiobus.machine.yamlio import load_yaml
from pydantic import Field, ValidationError, model_validator

from .auth import (
    ALL_ROLES,
    ANYWHERE,
    NOBODY,
    CertificateMatch,
    DeviceRules,
    Identity,
    Policy,
    RegisterArea,
    Role,
    token_digest,
)

MAX_FILE_BYTES = 1 << 20
RoleName = Literal["read", "write", "trace", "topology", "device", "admin", "all"]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
Pattern = Annotated[str, Field(min_length=1, max_length=256)]


class AuthFileError(ValueError):
    """The auth file is wrong; the message is one line naming the file, line and column."""


class CertificateSpec(Strict):
    """Which client certificates an identity has (every field given must match)."""

    common_name: str | None = None
    dns: str | None = Field(None, description="a DNS subject alternative name")
    subject: str | None = Field(None, description="the subject as gRPC prints it: O=bench,CN=cpu0")

    @model_validator(mode="after")
    def _some(self) -> CertificateSpec:
        if self.common_name is None and self.dns is None and self.subject is None:
            raise ValueError("give common_name, dns or subject")
        return self


class AreaSpec(Strict):
    """Where a device may register regions: [addr, addr+size) of an address space's root or
    of a container region."""

    address_space: str | None = Field(None, description="an address space id (default: any)")
    container: str | None = Field(None, description="a container region id")
    addr: U64
    size: Size

    @model_validator(mode="after")
    def _one_parent(self) -> AreaSpec:
        if self.address_space is not None and self.container is not None:
            raise ValueError("give address_space or container, not both")
        return self


class DeviceSpec(Strict):
    """What an identity with the device role may do."""

    names: list[Pattern] = Field(default_factory=lambda: ["*"])
    claims: list[Pattern] = Field(default_factory=lambda: ["*"])
    areas: list[AreaSpec] = Field(
        default_factory=list, alias="register", description="where it may register regions"
    )


class IdentitySpec(Strict):
    """One identity: how it proves who it is, and its roles."""

    name: Name
    token_file: str | None = None
    token_env: str | None = None
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    certificate: CertificateSpec | None = None
    roles: list[RoleName]
    device: DeviceSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_plain_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise ValueError(
                "a token does not belong in this file: use token_file, token_env or "
                "token_sha256 (`printf %s TOKEN | sha256sum`)"
            )
        return data

    @model_validator(mode="after")
    def _one_way_in(self) -> IdentitySpec:
        tokens = [t for t in (self.token_file, self.token_env, self.token_sha256) if t]
        if len(tokens) > 1:
            raise ValueError("give one of token_file, token_env and token_sha256")
        if not tokens and self.certificate is None:
            raise ValueError("give token_file, token_env, token_sha256 or certificate")
        return self


class AuthSpec(Strict):
    """The whole file."""

    identities: list[IdentitySpec] = Field(default_factory=list)
    anonymous: list[RoleName] = Field(default_factory=list)


def _roles(names: list[str]) -> frozenset[Role]:
    return ALL_ROLES if "all" in names else frozenset(Role(n) for n in names)


def _device_rules(spec: DeviceSpec | None) -> DeviceRules:
    if spec is None:
        return DeviceRules()
    areas = tuple(
        RegisterArea(
            a.addr,
            a.addr + a.size,
            space="" if a.container else (a.address_space or "*"),
            container=a.container or "",
        )
        for a in spec.areas
    )
    return DeviceRules(tuple(spec.names), tuple(spec.claims), areas)


def load_policy(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Policy:
    """The policy in the file at ``path``; ``AuthFileError`` (one line) when it is wrong."""
    env = os.environ if environ is None else environ
    source = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise AuthFileError(f"--auth {source}: {e.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise AuthFileError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data, locate = load_yaml(raw.decode("utf-8", errors="replace"), source)
    except DescriptionError as e:
        raise AuthFileError(str(e).splitlines()[0]) from None

    def fail(where: Path_, message: str) -> AuthFileError:
        return AuthFileError(str(DescriptionError([(where, message)], source, locate)))

    try:
        spec = AuthSpec.model_validate(data if data is not None else {})
    except ValidationError as e:
        where, message = problems_of(e)[0]
        raise fail(where, message) from None
    folder = Path(source).parent
    tokens: list[tuple[bytes, Identity]] = []
    certificates: list[tuple[CertificateMatch, Identity]] = []
    names: dict[str, int] = {}
    digests: dict[bytes, str] = {}
    for i, item in enumerate(spec.identities):
        here: Path_ = ("identities", i)
        if item.name in names:
            raise fail((*here, "name"), f"{item.name!r} is also identities[{names[item.name]}]")
        names[item.name] = i
        ident = Identity(item.name, _roles(list(item.roles)), _device_rules(item.device))
        digest = _digest(item, folder, env, here, fail)
        if digest is not None:
            if digest in digests:
                raise fail(here, f"the same token as identity {digests[digest]!r}")
            digests[digest] = item.name
            tokens.append((digest, ident))
        if item.certificate is not None:
            c = item.certificate
            certificates.append((CertificateMatch(c.common_name, c.dns, c.subject), ident))
    anonymous = Identity(NOBODY.name, _roles(list(spec.anonymous)), authenticated=False)
    return Policy(tokens, certificates, anonymous, source)


def shared_token_policy(path: str | os.PathLike[str]) -> Policy:
    """The policy of ``serve --token-file FILE``: one identity, ``token``, whose token is in
    the file, with every role; nothing for callers without it."""
    try:
        digest = token_digest(read_token_file(path, "--token-file"))
    except CredentialsError as e:
        raise AuthFileError(str(e)) from None
    holder = Identity("token", ALL_ROLES, DeviceRules(register=ANYWHERE))
    return Policy([(digest, holder)], source=str(path))


def _digest(item: IdentitySpec, folder: Path, env: Any, here: Path_, fail: Any) -> bytes | None:
    if item.token_sha256:
        return bytes.fromhex(item.token_sha256)
    try:
        if item.token_file:
            return token_digest(read_token_file(folder / item.token_file, "token_file"))
        if item.token_env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item.token_env):
                raise CredentialsError(f"{item.token_env!r} is not an environment variable name")
            value = env.get(item.token_env, "").strip()
            if not value:
                raise CredentialsError(f"${item.token_env} is not set (or empty)")
            return token_digest(value)
    except CredentialsError as e:
        field = "token_file" if item.token_file else "token_env"
        raise fail((*here, field), str(e)) from None
    return None
