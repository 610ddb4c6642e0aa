"""Credentials for tests: tokens in files, ``serve --auth`` files, certificates made with
openssl, and raw calls that present a token."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from mmiobus.v1 import devices_pb2, devices_pb2_grpc


def write_token(folder: Path, name: str) -> tuple[str, Path]:
    """A fresh random token in ``folder/NAME.token`` (mode 0600, with a trailing newline as
    editors write it); returns the token and the file."""
    token = secrets.token_urlsafe(24)
    path = folder / f"{name}.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token, path


def write_auth_file(
    folder: Path, identities: Sequence[Mapping[str, Any]], anonymous: Sequence[str] = ()
) -> Path:
    """An ``--auth`` file in ``folder`` with these identities."""
    path = folder / "auth.yaml"
    path.write_text(
        yaml.safe_dump({"identities": [dict(i) for i in identities], "anonymous": list(anonymous)})
    )
    return path


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata that presents ``token`` (none for ``None``)."""
    return (("authorization", f"Bearer {token}"),) if token is not None else ()


@dataclass
class Pki:
    """A CA, the bus's certificate (for 127.0.0.1 and localhost) and client certificates, as
    files."""

    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """The certificate and key of client ``name`` (its common name)."""
        return self.folder / f"{name}.crt", self.folder / f"{name}.key"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(folder: Path, clients: Sequence[str] = (), ca_name: str = "test-ca") -> Pki:
    """Certificates signed by a fresh CA: the bus's and one per client (CN=name,
    DNS:name.test); skips the test when openssl is missing."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is missing: `apt-get install openssl` (it makes the certificates)")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca = folder / f"{ca_name}.key", folder / f"{ca_name}.crt"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
             "-subj", f"/CN={ca_name}")  # fmt: skip

    def issue(name: str, subject: str, san: str) -> None:
        key, csr, crt = (folder / f"{name}.{x}" for x in ("key", "csr", "crt"))
        ext = folder / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n")
        _openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", subject)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))  # fmt: skip

    issue("bus", "/CN=bus", "DNS:localhost,IP:127.0.0.1")
    for name in clients:
        issue(name, f"/O=bench/CN={name}", f"DNS:{name}.test")
    return Pki(folder, ca, folder / "bus.crt", folder / "bus.key")


class RawAttach:
    """A ``Devices.Attach`` stream presenting ``metadata``, driven message by message."""

    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self._out: list[devices_pb2.DeviceMessage] = []
        self._more = threading.Condition()
        self._closed = False
        stub = devices_pb2_grpc.DevicesStub(channel)
        self.call = stub.Attach(self._requests(), metadata=tuple(metadata))
        self._replies: Iterator[devices_pb2.BusMessage] = iter(self.call)

    def _requests(self) -> Iterator[devices_pb2.DeviceMessage]:
        while True:
            with self._more:
                self._more.wait_for(lambda: self._out or self._closed)
                if not self._out:
                    return
                message = self._out.pop(0)
            yield message

    def send(self, **fields: Any) -> None:
        with self._more:
            self._out.append(devices_pb2.DeviceMessage(**fields))
            self._more.notify()

    def receive(self) -> devices_pb2.BusMessage:
        """The next message from the bus (``grpc.RpcError`` when it ended the stream)."""
        return next(self._replies)

    def hello(self, name: str, token: str = "") -> devices_pb2.BusMessage:
        self.send(hello=devices_pb2.Hello(name=name, min_protocol=1, max_protocol=1, token=token))
        return self.receive()

    def close(self) -> None:
        with self._more:
            self._closed = True
            self._more.notify()
        self.call.cancel()
