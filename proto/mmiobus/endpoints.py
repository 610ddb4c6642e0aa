"""Where a bus is: addresses as people write them, and the gRPC channels every role opens.

An address is ``HOST:PORT`` (``127.0.0.1:7170``, ``bus.example:7170``), ``[IPV6]:PORT``
(``[::1]:7170``) or ``unix:PATH``. A missing port means 7170, the port ``mmiobus serve``
listens on by default. Clients, device processes and CPU front-ends open their channels here,
with the same credentials (``mmiobus.credentials``) and the same keepalive, so that a bus whose
host vanishes without closing its connections is noticed within half a minute.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from typing import Any

import grpc

from .credentials import Credentials, secure_channel

DEFAULT_PORT = 7170
DEFAULT_SERVER = f"127.0.0.1:{DEFAULT_PORT}"

# Ping an idle connection every 20 s and give up after 10 s without an answer. The server
# accepts pings that often (see its options).
KEEPALIVE: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
# The server enforces its own limits (and says which); clients split what they send to fit.
UNLIMITED: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]

_HOST_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class AddressError(ValueError):
    """An address that is not ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH``."""


def default_server() -> str:
    """``$MMIOBUS_SERVER``, else the address `mmiobus serve` listens on by default."""
    return os.environ.get("MMIOBUS_SERVER") or DEFAULT_SERVER


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> str:
    """``text`` checked and normalised: ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:/abs/path``
    (a relative unix path is made absolute). A missing port is ``default_port``."""
    if not isinstance(text, str) or not text.strip():
        raise AddressError("an address is HOST:PORT or unix:PATH (it is empty)")
    text = text.strip()
    if text.startswith("unix:"):
        path = text.removeprefix("unix://") if text.startswith("unix://") else text[5:]
        if text.startswith("unix://") and not path.startswith("/"):
            raise AddressError(f"{text!r}: unix:// takes an absolute path (unix:///run/bus.sock)")
        if not path:
            raise AddressError(f"{text!r}: say which socket (unix:/run/mmiobus.sock)")
        return f"unix:{os.path.abspath(path)}"
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise AddressError(
            f"{text!r}: addresses have no {scheme}:// scheme; write HOST:PORT (e.g. "
            f"{text.split('://', 1)[1].split('/')[0] or '127.0.0.1:7170'}) or unix:PATH"
        )
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise AddressError(f"{text!r}: an IPv6 address ends with ']' ([::1]:7170)")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise AddressError(f"{text!r}: {host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise AddressError(f"{text!r}: write [IPV6]:PORT, e.g. [::1]:7170")
        port = _port(rest[1:], text) if rest else default_port
        return f"[{host}]:{port}"
    if text.count(":") > 1:
        raise AddressError(f"{text!r}: put an IPv6 address in brackets: [{text}]:{default_port}")
    host, sep, port_text = text.partition(":")
    if not host or not _HOST_RE.match(host):
        raise AddressError(f"{text!r}: {host!r} is not a host name or IP address")
    port = _port(port_text, text) if sep else default_port
    return f"{host}:{port}"


def _port(text: str, address: str) -> int:
    if not text.isdigit():
        raise AddressError(f"{address!r}: the port {text!r} is not a number (0-65535)")
    port = int(text)
    if not 0 <= port <= 65535:
        raise AddressError(f"{address!r}: the port {port} is outside 0-65535")
    return port


def bind_error(address: str) -> OSError | None:
    """Why a TCP listener could not bind ``address`` (``HOST:PORT`` or ``[IPV6]:PORT``) now:
    the error of a trial bind (a ``socket.gaierror`` for a host that does not resolve), or
    None when it can."""
    host, _, port = address.rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return e
    family, kind, proto, _name, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as e:
            return e
    return None


def channel_target(address: str) -> str:
    """The gRPC target for a checked address."""
    return parse_address(address)


def open_channel(
    address: str,
    options: Sequence[tuple[str, Any]] = (),
    credentials: Credentials | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to the bus at ``address``, with keepalive and no message-size limit
    of its own (the server's limits apply), presenting ``credentials`` (default: those of the
    environment, ``mmiobus.credentials``; ``Credentials()`` for none)."""
    creds = Credentials.from_env() if credentials is None else credentials
    return secure_channel(channel_target(address), creds, [*KEEPALIVE, *UNLIMITED, *options])


def unreachable(target: str, details: str) -> str:
    """Why nothing answers at ``target`` (an UNAVAILABLE call): gRPC's ``details``, with what
    they most likely mean when the connection could not be made."""
    connecting = "failed to connect" in details
    if connecting and "Tls handshake failed" in details:
        if "WRONG_VERSION_NUMBER" in details:
            why = "it does not speak TLS (leave out --tls-ca and $MMIOBUS_TLS_CA)"
        elif "CERTIFICATE_VERIFY_FAILED" in details:
            why = "its certificate is not one the CA you trust signed (--tls-ca, $MMIOBUS_TLS_CA)"
        else:
            why = "the TLS handshake failed"
        return f"cannot talk to the bus at {target}: {why}: {details}"
    if connecting and "Socket closed" in details:
        return (
            f"the server at {target} closed the connection at once: a bus that requires TLS "
            "(give --tls-ca) or a client certificate (--tls-cert and --tls-key) does that: "
            f"{details}"
        )
    return (
        f"no mmiobus server answers at {target} (is `mmiobus serve` running there? Set the "
        f"address with --server or MMIOBUS_SERVER): {details}"
    )
