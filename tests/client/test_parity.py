"""`Bus` is the blocking face of `AsyncBus`: the same public methods, with the same parameters
(names, kinds, defaults and annotations), so that code moves between them unchanged and type
checkers see every keyword (``address_space``, ``attrs``, ``check``) on both."""

from __future__ import annotations

import inspect

from mmiobus.client import AsyncBus, AsyncStream, Bus, Stream

# Only the asyncio client is opened in two steps (`await bus.connect()`); `Bus()` connects.
ASYNC_ONLY = {"connect"}


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def _properties(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls, lambda m: isinstance(m, property))
        if not name.startswith("_")
    }


def _parameters(signature: inspect.Signature) -> list[tuple[str, object, object, object]]:
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]


def test_bus_has_every_public_method_of_async_bus():
    assert set(_methods(AsyncBus)) - ASYNC_ONLY == set(_methods(Bus))


def test_each_method_takes_the_same_parameters_on_both():
    blocking = _methods(Bus)
    for name, signature in _methods(AsyncBus).items():
        if name not in ASYNC_ONLY:
            assert _parameters(blocking[name]) == _parameters(signature), name


def test_the_constructors_take_the_same_parameters():
    assert _parameters(inspect.signature(Bus)) == _parameters(inspect.signature(AsyncBus))


def test_what_a_connection_knows_is_on_both():
    """`info` and `byteorder` on both (the asyncio client alone exposes its stubs)."""
    assert {"info", "byteorder"} <= _properties(Bus) & _properties(AsyncBus)


def test_the_streams_share_read_and_write():
    """Both streams build their accesses with one ``read``/``write`` and differ only in the
    futures ``submit`` returns."""
    assert Stream.read is AsyncStream.read and Stream.write is AsyncStream.write
    for name in ("submit", "flush"):
        assert _parameters(inspect.signature(getattr(Stream, name))) == _parameters(
            inspect.signature(getattr(AsyncStream, name))
        ), name
