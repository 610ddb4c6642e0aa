"""The server's configuration: limits and options, decided once at start-up, in one frozen place.

Every refusal names the limit (its `mmiobus serve` option) and the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .auth import Policy

MIB = 1 << 20
# The most a reply spends on one access besides its data: the result's framing (tag and
# length), id (tag and 10-byte varint), data (tag and 5-byte length) and result (tag and varint).
REPLY_OVERHEAD = 32


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_access_bytes: int = 1 * MIB  # --max-access-bytes
    max_batch_bytes: int = 16 * MIB  # --max-batch-bytes
    max_batch_accesses: int = 65536  # --max-batch-accesses
    max_topology_ops: int = 10000  # --max-topology-ops
    max_message_bytes: int = 64 * MIB  # --max-message-bytes
    grace_seconds: float = 5.0  # --grace: how long shutdown waits for in-flight calls
    # What the bus keeps for its peers, whatever they send or fail to read:
    max_ram_bytes: int = 1 << 30  # --max-ram-bytes: RAM, ROM and ROM devices created at run time
    max_device_queue_bytes: int = 32 * MIB  # --max-device-queue: what waits to go to a device
    max_regions: int = 65536  # --max-regions: regions and address spaces peers may bring about

    def __post_init__(self) -> None:
        if not 0 <= self.max_ram_bytes <= 1 << 64:
            raise ValueError(
                f"--max-ram-bytes must be between 0 and 2**64, not {self.max_ram_bytes}"
            )
        if not self.max_access_bytes + 64 * 1024 <= self.max_device_queue_bytes < 1 << 40:
            raise ValueError(
                "--max-device-queue must hold a DMA reply of --max-access-bytes and then some: "
                f"at least {self.max_access_bytes + 64 * 1024}, not {self.max_device_queue_bytes}"
            )
        for name in (
            "max_access_bytes",
            "max_batch_bytes",
            "max_batch_accesses",
            "max_topology_ops",
            "max_message_bytes",
            "max_regions",
        ):
            value = getattr(self, name)
            if not 0 < value < 1 << 31:
                raise ValueError(f"{name} must be between 1 and 2**31-1, not {value}")
        if self.max_message_bytes < self.min_message_bytes:
            raise ValueError(
                "--max-message-bytes must leave room for the reply to a full batch: at least "
                f"--max-batch-bytes + {REPLY_OVERHEAD} * --max-batch-accesses + 64 = "
                f"{self.min_message_bytes}"
            )

    @property
    def min_message_bytes(self) -> int:
        return self.max_batch_bytes + REPLY_OVERHEAD * self.max_batch_accesses + 64


@dataclass(frozen=True)
class TraceSettings:
    """Server-wide trace settings (`--trace-queue`, `--trace-max-data`)."""

    queue_capacity: int = 10_000  # --trace-queue: a subscriber's queue unless it asks
    max_queue_capacity: int = 1_000_000  # the most a subscriber may ask for
    max_data_bytes: int = 64  # data kept per event unless the subscriber asks
    max_data_limit: int = 4096  # --trace-max-data: the most a subscriber may ask for
    batch: int = 512  # events per stream message
    # A stream message costs far more than an event: after the first event of a batch, wait
    # this long for more to join it (unless the batch fills first).
    flush_seconds: float = 0.05

    def __post_init__(self) -> None:
        if self.queue_capacity < 1:
            raise ValueError(f"--trace-queue must be at least 1, not {self.queue_capacity}")
        if self.max_data_limit < 0:
            raise ValueError(f"--trace-max-data must not be negative, not {self.max_data_limit}")


@dataclass(frozen=True)
class ServerTls:
    """The bus's certificate chain and key (PEM) for TLS on TCP (--tls-cert, --tls-key); with
    ``client_ca`` (--tls-client-ca), mutual TLS: a TLS caller presents a certificate that CA
    signed, on every TCP port or, with ``Security.mtls_listen``, on those ports alone (gRPC
    cannot ask for a certificate without requiring one, so optional means a port of its own)."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None


@dataclass(frozen=True)
class Security:
    """Who may reach the bus and what they may do (see ``mmiobus.server.authz``)."""

    policy: Policy | None = None  # --auth FILE: identities and roles; None: everyone is everything
    tls: ServerTls | None = None
    insecure: bool = False  # --insecure: listen beyond loopback without authentication
    socket_mode: int = 0o600  # --socket-mode: unix sockets' permissions
    # --mtls-listen: TCP ports of mutual TLS; the other TCP ports then take TLS without client
    # certificates (mutual TLS optional). Empty: with a client CA, every TCP port is mutual.
    mtls_listen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.socket_mode <= 0o777:
            raise ValueError(f"--socket-mode must be between 0 and 0777, not {self.socket_mode:o}")
        if self.mtls_listen and (self.tls is None or self.tls.client_ca is None):
            raise ValueError("--mtls-listen needs --tls-client-ca (and the bus's --tls-cert)")

    @property
    def mutual_everywhere(self) -> bool:
        """True when callers at every TCP port present client certificates (``--listen``
        ports; ``--mtls-listen`` ports always do)."""
        return self.tls is not None and self.tls.client_ca is not None and not self.mtls_listen

    def authenticates(self, mutual: bool) -> bool:
        """True when callers at a port (``mutual``: of mutual TLS) must prove who they are: a
        policy, or mutual TLS."""
        return self.policy is not None or mutual


@dataclass(frozen=True)
class ServerConfig:
    """Everything `mmiobus serve` was told, besides the machine and where to listen."""

    limits: Limits = field(default_factory=Limits)
    trace: TraceSettings = field(default_factory=TraceSettings)
    device_deadline_ms: float = 1000.0  # --device-deadline: a region's `deadline` wins
    device_tokens: frozenset[str] = frozenset()  # --device-token
    security: Security = field(default_factory=Security)
    metrics: tuple[str, ...] = ()  # --metrics: where to serve them (none: not counted)
    pin_cpus: bool = True  # one core for the process while a CPU runs (mmiobus.affinity)
    cpu_poll_max_ns: int | None = None  # --poll-max-us; None: 1 ms if pin_cpus, else 0

    def __post_init__(self) -> None:
        if not 0 < self.device_deadline_ms <= 3_600_000:
            raise ValueError(
                f"--device-deadline must be in (0, 3600000] ms, not {self.device_deadline_ms:g}"
            )
