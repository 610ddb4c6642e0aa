"""Hypothesis strategies for any protobuf message, built field by field from its descriptor.

``messages(Descriptor)`` draws a message with a random subset of its fields set to random
values of their wire types (every integer width at its full range, unknown enum numbers,
strings empty, short, non-ASCII or long, bytes), one field of each oneof or none, repeated
fields of a few elements, and nested messages a few levels deep. ``hints`` by field name steer
values towards what the server knows (region ids, addresses), so that fuzzing reaches past the
first lookup: a hint is keyed ``"NAME:str"`` or ``"NAME:int"`` and applies to fields of that
name and kind. For fuzzing servers: the messages always serialize, and what the server must
survive besides is raw bytes (``raw_bytes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

F = FieldDescriptor
_INTS: dict[int, st.SearchStrategy[int]] = {
    F.TYPE_INT32: st.integers(-(1 << 31), (1 << 31) - 1),
    F.TYPE_SINT32: st.integers(-(1 << 31), (1 << 31) - 1),
    F.TYPE_SFIXED32: st.integers(-(1 << 31), (1 << 31) - 1),
    F.TYPE_UINT32: st.integers(0, (1 << 32) - 1),
    F.TYPE_FIXED32: st.integers(0, (1 << 32) - 1),
    F.TYPE_INT64: st.integers(-(1 << 63), (1 << 63) - 1),
    F.TYPE_SINT64: st.integers(-(1 << 63), (1 << 63) - 1),
    F.TYPE_SFIXED64: st.integers(-(1 << 63), (1 << 63) - 1),
    F.TYPE_UINT64: st.integers(0, (1 << 64) - 1),
    F.TYPE_FIXED64: st.integers(0, (1 << 64) - 1),
}
STRINGS = st.one_of(
    st.just(""),
    st.text(max_size=12),
    st.text(alphabet="abc.*?[]-_0123456789", max_size=16),
    st.text(min_size=257, max_size=4000),  # past every name limit
)
BYTES = st.one_of(st.binary(max_size=16), st.binary(min_size=17, max_size=4096))


def raw_bytes(max_size: int = 256) -> st.SearchStrategy[bytes]:
    """Bytes that are rarely a valid message: random, or a valid-looking tag with a broken
    length."""
    return st.one_of(
        st.binary(min_size=1, max_size=max_size),
        st.binary(max_size=8).map(lambda b: b"\x0a\xff\xff\xff\x0f" + b),
    )


def messages(
    descriptor: Descriptor,
    hints: Mapping[str, st.SearchStrategy[Any]] | None = None,
    depth: int = 3,
) -> st.SearchStrategy[Any]:
    """Messages of type ``descriptor`` (see the module docstring); ``hints`` maps field names
    to strategies mixed in with the generic ones for that field's type."""
    cls = message_factory.GetMessageClass(descriptor)
    hints = hints or {}

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        msg = cls()
        for field in descriptor.fields:
            if field.containing_oneof is not None:
                continue
            if draw(st.booleans()):
                _fill(draw, msg, field, hints, depth)
        for oneof in descriptor.oneofs:
            chosen = draw(st.sampled_from([None, *oneof.fields]))
            if chosen is not None:
                _fill(draw, msg, chosen, hints, depth)
        return msg

    return build()


def _value(
    field: FieldDescriptor, hints: Mapping[str, st.SearchStrategy[Any]], depth: int
) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INTS:
        base: st.SearchStrategy[Any] = _INTS[t]
    elif t == F.TYPE_BOOL:
        base = st.booleans()
    elif t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        base = st.floats(allow_nan=True, allow_infinity=True, width=32 if t == F.TYPE_FLOAT else 64)
    elif t == F.TYPE_STRING:
        base = STRINGS
    elif t == F.TYPE_BYTES:
        base = BYTES
    elif t == F.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        base = st.one_of(st.sampled_from(known), st.integers(-3, 99))
    else:  # a message
        base = messages(field.message_type, hints, depth - 1)
    kind = "int" if t in _INTS else "str" if t == F.TYPE_STRING else "other"
    hint = hints.get(f"{field.name}:{kind}")
    return st.one_of(hint, base) if hint is not None else base


def _fill(
    draw: st.DrawFn,
    msg: Any,
    field: FieldDescriptor,
    hints: Mapping[str, st.SearchStrategy[Any]],
    depth: int,
) -> None:
    if field.type == F.TYPE_MESSAGE and depth <= 0:
        return
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return  # maps appear only in replies
    strategy = _value(field, hints, depth)
    if field.is_repeated:
        values = draw(st.lists(strategy, max_size=4))
        target = getattr(msg, field.name)
        for v in values:
            if field.type == F.TYPE_MESSAGE:
                target.add().CopyFrom(v)
            else:
                target.append(v)
        return
    value = draw(strategy)
    if field.type == F.TYPE_MESSAGE:
        getattr(msg, field.name).CopyFrom(value)
    else:
        setattr(msg, field.name, value)
