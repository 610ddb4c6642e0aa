"""Where the bus may listen, and how: the rule that keeps an unauthenticated bus on loopback,
gRPC's TLS credentials for TCP, and unix sockets only their owner can reach.

Loopback (``127.0.0.0/8``, ``::1``, ``localhost``) and unix sockets are local. Listening
anywhere else needs authentication (``--auth FILE`` or mutual TLS), or ``--insecure``, which
then warns.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
from collections.abc import Iterator

import grpc

from .config import Security, ServerTls


class ExposureError(Exception):
    """Listening where anyone could reach the bus, with nothing to tell callers apart."""


def is_local(address: str) -> bool:
    """True for a unix socket or a loopback address (``HOST:PORT``, ``[IPV6]:PORT``)."""
    if address.startswith("unix:"):
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def exposure_warnings(ports: list[tuple[str, bool]], security: Security) -> list[str]:
    """The warnings listening on ``ports`` (each an address, and True for mutual TLS there)
    deserves; raises ``ExposureError`` when it must not happen at all."""
    remote = [(a, mutual) for a, mutual in ports if not is_local(a)]
    if not remote:
        return []
    open_ports = [a for a, mutual in remote if not security.authenticates(mutual)]
    if open_ports:
        where = ", ".join(open_ports)
        if not security.insecure:
            remedy = (
                "Give --auth FILE (tokens and roles) for the ports that are not --mtls-listen"
                if security.mtls_listen
                else "Give --auth FILE (tokens and roles) or --tls-client-ca FILE (mutual TLS)"
            )
            raise ExposureError(
                f"refusing to listen on {where} without authentication: anyone who reaches it "
                f"could read, write and reshape the machine. {remedy}, listen on 127.0.0.1 or "
                "a unix socket, or say --insecure if you mean it"
            )
        return [
            f"listening on {where} without authentication (--insecure): anyone who reaches it "
            "may do everything"
        ]
    if security.tls is None and security.policy is not None and security.policy.tokens:
        where = ", ".join(a for a, _ in remote)
        return [f"tokens cross the network in clear text on {where}: add --tls-cert and --tls-key"]
    return []


def check_tls_files(cert: str, key: str, client_ca: str | None) -> None:
    """Raise ``ValueError`` (naming the option) unless ``cert`` and ``key`` are a certificate
    chain and its key, and ``client_ca`` holds certificates: gRPC's own refusal only says
    that it could not bind."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise ValueError(
            f"--tls-cert {cert} and --tls-key {key} are not a certificate and its key: "
            f"{getattr(e, 'reason', None) or e}"
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(client_ca)
        except (ssl.SSLError, OSError) as e:
            raise ValueError(
                f"--tls-client-ca {client_ca}: no CA certificate in it: "
                f"{getattr(e, 'reason', None) or e}"
            ) from None


def server_credentials(tls: ServerTls, mutual: bool) -> grpc.ServerCredentials:
    """gRPC's TLS credentials for one of the bus's TCP ports: with ``mutual``, callers present
    a certificate ``tls.client_ca`` signed."""
    return grpc.ssl_server_credentials(
        [(tls.private_key, tls.cert_chain)],
        root_certificates=tls.client_ca if mutual else None,
        require_client_auth=mutual,
    )


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """A umask that lets nobody but the owner in, while gRPC creates a unix socket (it binds
    when the port is added): there is no moment when others may connect."""
    old = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(old)


def set_socket_mode(path: str, mode: int) -> None:
    """Give the socket at ``path`` its configured permissions (0600: its owner only)."""
    os.chmod(path, mode)
