"""Little-endian words as bytes, and bytes as a little-endian number."""

from __future__ import annotations


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def le(data: bytes) -> int:
    return int.from_bytes(data, "little")
