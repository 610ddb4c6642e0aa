"""What a client, device process, CPU front-end or tracer presents to a bus: a bearer token
and/or TLS (a CA to trust the bus by, and a certificate of its own for mutual TLS).

Secrets come from files or the environment, never only from a command line (which every local
user can read with ``ps``)::

    MMIOBUS_TOKEN=...            the token itself          (--token-file FILE reads it instead)
    MMIOBUS_TOKEN_FILE=FILE      a file holding the token
    MMIOBUS_TLS_CA=FILE          trust the bus's certificate if this CA signed it (turns TLS on)
    MMIOBUS_TLS_CERT=FILE        this process's certificate, for mutual TLS (with MMIOBUS_TLS_KEY)
    MMIOBUS_TLS_KEY=FILE         its private key
    MMIOBUS_TLS_SERVER_NAME=NAME the name the bus's certificate must carry, when the address
                                 does not (e.g. connecting by IP to a certificate for bus.example)

Options win over the environment. The token travels as ``authorization: Bearer TOKEN`` metadata
on every call. It is added by the channel itself rather than by gRPC's call credentials, whose
Python plugin runs on a thread pool for every call and costs more than a bus access.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import grpc

ENV_TOKEN = "MMIOBUS_TOKEN"
ENV_TOKEN_FILE = "MMIOBUS_TOKEN_FILE"
ENV_TLS_CA = "MMIOBUS_TLS_CA"
ENV_TLS_CERT = "MMIOBUS_TLS_CERT"
ENV_TLS_KEY = "MMIOBUS_TLS_KEY"
ENV_TLS_SERVER_NAME = "MMIOBUS_TLS_SERVER_NAME"

MAX_TOKEN_BYTES = 4096
MAX_PEM_BYTES = 1 << 20


class CredentialsError(ValueError):
    """A credential that cannot be used: a file that cannot be read, an empty token, a
    certificate without its key. The message names the option or variable and the file."""


def read_token_file(path: str | os.PathLike[str], what: str) -> str:
    """The token in the file at ``path`` (surrounding whitespace, such as the newline an editor
    or ``echo`` adds, removed). ``what`` names where the path came from, for errors."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TOKEN_BYTES + 1)
    except OSError as e:
        raise CredentialsError(f"{what} {path}: cannot read the token: {e.strerror}") from None
    if len(data) > MAX_TOKEN_BYTES:
        raise CredentialsError(f"{what} {path}: a token has at most {MAX_TOKEN_BYTES} bytes")
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CredentialsError(f"{what} {path}: a token is printable ASCII text") from None
    check_token(token, f"{what} {path}")
    return token


def check_token(token: str, what: str) -> None:
    """Refuse a token gRPC metadata cannot carry (empty, spaces, control characters)."""
    if not token:
        raise CredentialsError(f"{what}: the token is empty")
    if len(token) > MAX_TOKEN_BYTES:
        raise CredentialsError(f"{what}: a token has at most {MAX_TOKEN_BYTES} characters")
    if not all(33 <= ord(c) < 127 for c in token):
        raise CredentialsError(f"{what}: a token is printable ASCII without spaces")


def read_pem(path: str | os.PathLike[str], what: str) -> bytes:
    """The PEM file at ``path`` (a certificate, a chain or a key)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except OSError as e:
        raise CredentialsError(f"{what} {path}: {e.strerror}") from None
    if len(data) > MAX_PEM_BYTES or b"-----BEGIN " not in data:
        raise CredentialsError(f"{what} {path}: not a PEM file (-----BEGIN ...)")
    return data


@dataclass(frozen=True)
class Credentials:
    """A token and/or TLS material. ``Credentials()`` is none at all (plain text, no token);
    ``Credentials.load()`` reads options and the environment."""

    token: str = ""
    tls: bool = False  # TLS to the bus (with the system's CAs unless tls_ca is set)
    tls_ca: bytes | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    server_name: str = ""

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise CredentialsError(
                "a client certificate needs its key and a key its certificate: give both "
                "--tls-cert and --tls-key (or MMIOBUS_TLS_CERT and MMIOBUS_TLS_KEY)"
            )
        if self.token:
            check_token(self.token, "the token")

    @classmethod
    def load(
        cls,
        *,
        token_file: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        server_name: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Credentials from these options, else from the environment (see the module
        docstring). Raises ``CredentialsError`` naming the option or variable at fault."""
        env = os.environ if environ is None else environ
        token = ""
        if token_file:
            token = read_token_file(token_file, "--token-file")
        elif env.get(ENV_TOKEN):
            token = env[ENV_TOKEN].strip()
            check_token(token, f"${ENV_TOKEN}")
        elif env.get(ENV_TOKEN_FILE):
            token = read_token_file(env[ENV_TOKEN_FILE], f"${ENV_TOKEN_FILE}")

        def pem(option: str | None, flag: str, var: str) -> bytes | None:
            if option:
                return read_pem(option, flag)
            if env.get(var):
                return read_pem(env[var], f"${var}")
            return None

        ca = pem(tls_ca, "--tls-ca", ENV_TLS_CA)
        cert = pem(tls_cert, "--tls-cert", ENV_TLS_CERT)
        key = pem(tls_key, "--tls-key", ENV_TLS_KEY)
        name = server_name if server_name is not None else env.get(ENV_TLS_SERVER_NAME, "")
        return cls(token, ca is not None or cert is not None, ca, cert, key, name or "")

    @classmethod
    def from_env(cls) -> Credentials:
        """Credentials from the environment alone."""
        return cls.load()

    def with_token(self, token: str) -> Credentials:
        """The same, with ``token`` instead of the current one."""
        return replace(self, token=token)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What every call carries: the token, if there is one."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """gRPC's TLS credentials for the channel, or ``None`` for plain text."""
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.tls_ca,
            private_key=self.tls_key,
            certificate_chain=self.tls_cert,
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel options the credentials need (the name to check in the bus's certificate)."""
        if self.tls and self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []

    def describe(self) -> str:
        """What is presented, for messages (never the secret)."""
        parts = []
        if self.token:
            parts.append("a token")
        if self.tls_cert is not None:
            parts.append("a client certificate")
        elif self.tls:
            parts.append("TLS")
        return " and ".join(parts) or "no credentials"


class _WithMetadata:
    """A multi-callable that adds the credentials' metadata to every call."""

    __slots__ = ("_call", "_metadata")

    def __init__(self, call: Any, metadata: grpc.aio.Metadata) -> None:
        self._call = call
        self._metadata = metadata  # built once: gRPC would convert a tuple on every call

    def __call__(self, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        md = self._metadata
        if metadata is not None:
            md = grpc.aio.Metadata(*self._metadata, *tuple(metadata))
        return self._call(*args, metadata=md, **kwargs)


class AuthorizedChannel(grpc.aio.Channel):
    """An asyncio channel whose calls all carry ``metadata`` (the bearer token); otherwise the
    channel it wraps."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
        self._channel = channel
        self._metadata = grpc.aio.Metadata(*metadata)

    async def __aenter__(self) -> AuthorizedChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _WithMetadata(self._channel.unary_unary(*args, **kwargs), self._metadata)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _WithMetadata(self._channel.unary_stream(*args, **kwargs), self._metadata)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _WithMetadata(self._channel.stream_unary(*args, **kwargs), self._metadata)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _WithMetadata(self._channel.stream_stream(*args, **kwargs), self._metadata)


def secure_channel(
    target: str, credentials: Credentials, options: Sequence[tuple[str, Any]]
) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` presenting ``credentials`` (TLS on TCP only: the bus
    serves unix sockets in plain text, guarded by their file mode; the token goes either way)."""
    # A unix socket is guarded by its file mode; the bus serves no TLS there.
    tls = None if target.startswith("unix:") else credentials.channel_credentials()
    opts = [*options, *(credentials.channel_options() if tls is not None else [])]
    if tls is None:
        channel = grpc.aio.insecure_channel(target, options=opts)
    else:
        channel = grpc.aio.secure_channel(target, tls, options=opts)
    if credentials.metadata:
        return AuthorizedChannel(channel, credentials.metadata)
    return channel
