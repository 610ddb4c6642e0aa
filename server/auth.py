"""Who is calling: identities, their roles, and how a call's credentials name one.

A caller presents a bearer token (``authorization: Bearer TOKEN`` metadata; a device may put it
in its hello instead) or a client certificate (mutual TLS); the bus's policy (``serve --auth
FILE``, read by ``auth_file``) maps either to an ``Identity``: a name, roles and, for devices,
the names, claims and address ranges allowed. A caller that presents nothing is the policy's
anonymous identity (no roles unless the file grants some).

Tokens are compared as SHA-256 digests with ``hmac.compare_digest``, against every identity in
turn, so that neither the comparison nor the search tells a caller how close a guess came.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

TWO64 = 1 << 64


class Role(enum.StrEnum):
    """What an identity may do; ``authz.RULES`` says which RPC needs which."""

    READ = "read"  # read memory, the topology, interrupt lines, the device list
    WRITE = "write"  # write memory
    TRACE = "trace"  # watch every access, data included
    TOPOLOGY = "topology"  # change the topology (ApplyTopology)
    DEVICE = "device"  # attach as a device (within DeviceRules)
    ADMIN = "admin"  # reset devices, see peers' addresses, change regions devices serve


ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class RegisterArea:
    """Where a device may register regions: inside ``[start, end)`` of an address space's root
    (``space``; ``"*"`` for any) or of a container region (``container``)."""

    start: int
    end: int
    space: str = ""
    container: str = ""

    def allows(self, space: str, container: str, addr: int, size: int) -> bool:
        if self.container:
            if container != self.container:
                return False
        elif container or self.space not in ("*", space):
            return False
        return self.start <= addr and addr + size <= self.end


@dataclass(frozen=True)
class DeviceRules:
    """What an identity with the device role may do: the device names it may attach as and the
    regions of the machine description it may claim (glob patterns), and where it may register
    regions of its own."""

    names: tuple[str, ...] = ("*",)
    claims: tuple[str, ...] = ("*",)
    register: tuple[RegisterArea, ...] = ()

    def may_be(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.names)

    def may_claim(self, region: str) -> bool:
        return any(fnmatch.fnmatchcase(region, p) for p in self.claims)

    def may_register(self, space: str, container: str, addr: int, size: int) -> bool:
        return any(area.allows(space, container, addr, size) for area in self.register)


ANYWHERE = (RegisterArea(0, TWO64, space="*"),)


@dataclass(frozen=True)
class Identity:
    """A caller the bus knows: its name (in logs and refusals) and what it may do."""

    name: str
    roles: frozenset[Role] = frozenset()
    device: DeviceRules = field(default_factory=DeviceRules)
    authenticated: bool = True  # False for callers without credentials

    def has(self, role: Role) -> bool:
        return role in self.roles

    def describe_roles(self) -> str:
        return ", ".join(sorted(self.roles)) or "no roles"


EVERYONE = Identity("everyone", ALL_ROLES, DeviceRules(register=ANYWHERE))
"""Every caller of a bus without authentication (loopback, or ``--insecure``)."""

NOBODY = Identity("anonymous", authenticated=False)
"""A caller without credentials, where the policy grants such callers nothing."""


def token_digest(token: str) -> bytes:
    """The SHA-256 of a token, as policies keep them."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class CertificateMatch:
    """Which verified client certificates an identity has: every field given must match (the
    common name, a DNS subject alternative name, or the whole subject as gRPC prints it, e.g.
    ``O=bench,CN=cpu0``)."""

    common_name: str | None = None
    dns: str | None = None
    subject: str | None = None

    def matches(self, context: Mapping[str, Sequence[bytes]]) -> bool:
        checks = (
            (self.common_name, "x509_common_name"),
            (self.dns, "x509_subject_alternative_name"),
            (self.subject, "x509_subject"),
        )
        given = [(want, key) for want, key in checks if want is not None]
        return bool(given) and all(
            want.encode() in context.get(key, ()) for want, key in given if want is not None
        )


class Policy:
    """Who is who on this bus: identities by token digest and by certificate, and what
    callers without credentials may do."""

    def __init__(
        self,
        tokens: Iterable[tuple[bytes, Identity]] = (),
        certificates: Iterable[tuple[CertificateMatch, Identity]] = (),
        anonymous: Identity = NOBODY,
        source: str = "",
    ) -> None:
        self.tokens = tuple(tokens)
        self.certificates = tuple(certificates)
        self.anonymous = anonymous
        self.source = source  # the file it came from, for messages

    @property
    def identities(self) -> list[Identity]:
        seen: dict[str, Identity] = {}
        for _, ident in (*self.tokens, *self.certificates):
            seen.setdefault(ident.name, ident)
        return list(seen.values())

    def by_token(self, token: str) -> Identity | None:
        """The identity whose token this is, or ``None``; the same work whatever the token."""
        digest = token_digest(token)
        found = None
        for known, ident in self.tokens:
            if hmac.compare_digest(known, digest):
                found = ident
        return found

    def by_certificate(self, context: Mapping[str, Sequence[bytes]]) -> Identity | None:
        """The identity of the verified client certificate in gRPC's auth context, or
        ``None`` (no certificate, or none the policy names)."""
        if "x509_subject" not in context:
            return None
        for match, ident in self.certificates:
            if match.matches(context):
                return ident
        return None


CALLER: ContextVar[Identity | None] = ContextVar("mmiobus_caller", default=None)
"""The identity of the call being served, set by the gate (``authz``) before its handler runs
(but for memory accesses, whose handlers need not know); tasks a handler starts inherit it."""
