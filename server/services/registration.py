"""Registering servicers (several may share one service) so that a message that does not parse
is INVALID_ARGUMENT.

grpc's generated registration deserializes requests before the handler runs and answers a
message that does not parse with INTERNAL ("Exception deserializing request!"), which blames the
server for the client's bytes. Here the deserializer never raises: it hands the handler a
``Malformed`` marker, and the wrapper answers INVALID_ARGUMENT with the parser's reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import message, message_factory
from google.protobuf.descriptor import ServiceDescriptor


class Malformed:
    """Stands in for a request message that failed to parse (or was too large)."""

    __slots__ = ("code", "reason")

    def __init__(
        self, reason: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    ) -> None:
        self.reason = reason
        self.code = code


def _tolerant(cls: Any, max_bytes: int | None) -> Callable[[bytes], Any]:
    parse = cls.FromString

    def deserialize(data: bytes) -> Any:
        if max_bytes is not None and len(data) > max_bytes:
            return Malformed(
                f"a {cls.DESCRIPTOR.name} message of {len(data)} bytes exceeds the limit of "
                f"{max_bytes} bytes per message (--max-message-bytes)",
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )
        try:
            return parse(data)
        except (message.DecodeError, ValueError) as e:
            return Malformed(f"the {cls.DESCRIPTOR.full_name} message does not parse: {e}")

    return deserialize


def _unary(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if type(request) is Malformed:
            await context.abort(request.code, request.reason)
        return await method(request, context)

    return handler


def _unary_stream(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if type(request) is Malformed:
            await context.abort(request.code, request.reason)
        async for item in method(request, context):
            yield item

    return handler


class _CheckedIterator:
    """The request stream, turning a message that did not parse into INVALID_ARGUMENT."""

    def __init__(self, it: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        self._it = it.__aiter__()
        self._context = context

    def __aiter__(self) -> _CheckedIterator:
        return self

    async def __anext__(self) -> Any:
        item = await self._it.__anext__()
        if type(item) is Malformed:
            await self._context.abort(item.code, item.reason)
        return item


def _stream_in(method: Callable[..., Any], streaming_out: bool) -> Callable[..., Any]:
    if streaming_out:

        async def handler(it: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            async for item in method(_CheckedIterator(it, context), context):
                yield item

        return handler

    async def unary_handler(it: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await method(_CheckedIterator(it, context), context)

    return unary_handler


def register(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    servicers: list[Any],
    max_message_bytes: int | None = None,
) -> None:
    """Add the methods of ``service`` to ``server``, each taken from the servicer in
    ``servicers`` that has it, with tolerant parsing (and, with ``max_message_bytes``, a size
    limit that names its option). A method no servicer has is a bug, refused here."""
    handlers = {}
    for m in service.methods:
        request_cls = message_factory.GetMessageClass(m.input_type)
        response_cls = message_factory.GetMessageClass(m.output_type)
        impl = next((getattr(s, m.name) for s in servicers if hasattr(s, m.name)), None)
        if impl is None:
            raise TypeError(f"no servicer implements {service.full_name}.{m.name}")
        kw = {
            "request_deserializer": _tolerant(request_cls, max_message_bytes),
            "response_serializer": response_cls.SerializeToString,
        }
        if m.client_streaming and m.server_streaming:
            h = grpc.stream_stream_rpc_method_handler(_stream_in(impl, True), **kw)
        elif m.client_streaming:
            h = grpc.stream_unary_rpc_method_handler(_stream_in(impl, False), **kw)
        elif m.server_streaming:
            h = grpc.unary_stream_rpc_method_handler(_unary_stream(impl), **kw)
        else:
            h = grpc.unary_unary_rpc_method_handler(_unary(impl), **kw)
        handlers[m.name] = h
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)
