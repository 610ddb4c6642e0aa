"""How `mmiobus.client.transfer` cuts a transfer: accesses within max_access_bytes (and half a
message), batches within max_batch_bytes, max_batch_accesses and STEP, in address order, the
whole range covered once; and never past the last address."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mmiobus.client.transfer import STEP, pieces
from mmiobus.v1 import bus_pb2 as pb

limits_st = st.builds(
    pb.Limits,
    max_access_bytes=st.integers(1, 1 << 21),
    max_batch_bytes=st.integers(1, 1 << 25),
    max_batch_accesses=st.integers(1, 100),
    max_message_bytes=st.integers(64, 1 << 27),
)


@given(
    addr=st.integers(0, (1 << 64) - 1),
    size=st.integers(0, 5 << 20),
    limits=limits_st,
)
def test_pieces_cover_the_range_in_order_within_every_limit(addr, size, limits):
    size = min(size, (1 << 64) - addr)
    batches = list(pieces(addr, size, limits))
    flat = [p for batch in batches for p in batch]
    assert sum(n for _a, n in flat) == size
    at = addr
    for a, n in flat:
        assert a == at and n > 0
        assert n <= limits.max_access_bytes and n <= max(limits.max_message_bytes // 2, 1)
        at += n
    for batch in batches:
        assert batch
        assert len(batch) <= limits.max_batch_accesses
        assert sum(n for _a, n in batch) <= min(limits.max_batch_bytes, STEP)


def test_zero_limits_mean_none():
    """A server that leaves a limit at 0 sets none: pieces are STEP long."""
    batches = list(pieces(0, 3 * STEP, pb.Limits()))
    assert batches == [[(0, STEP)], [(STEP, STEP)], [(2 * STEP, STEP)]]


def test_a_range_past_the_last_address_is_refused():
    with pytest.raises(ValueError, match="64-bit"):
        list(pieces((1 << 64) - 4, 8, pb.Limits()))
