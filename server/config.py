"""Limits on what one request may ask for (each configurable with a `mmiobus serve` option)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
# The most a reply spends on one access besides its data: the result's framing (tag and
# length), id (tag and 10-byte varint), data (tag and 5-byte length) and result (tag and varint).
REPLY_OVERHEAD = 32


@dataclass(frozen=True)
class Limits:
    """Every rejection names the limit (its command-line option) and the offending value."""

    max_access_bytes: int = 1 * MIB  # --max-access-bytes
    max_batch_bytes: int = 16 * MIB  # --max-batch-bytes
    max_batch_accesses: int = 65536  # --max-batch-accesses
    max_topology_ops: int = 10000  # --max-topology-ops
    max_message_bytes: int = 64 * MIB  # --max-message-bytes
    grace_seconds: float = 5.0  # --grace: how long shutdown waits for in-flight calls

    def __post_init__(self) -> None:
        for name in (
            "max_access_bytes",
            "max_batch_bytes",
            "max_batch_accesses",
            "max_topology_ops",
            "max_message_bytes",
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
