"""Registering servicers (several may share one service) so that a message that does not parse
is INVALID_ARGUMENT.

grpc's generated registration deserializes requests before the handler runs and answers a
message that does not parse with INTERNAL ("Exception deserializing request!"), which blames the
server for the client's bytes. Here the deserializer never raises: it hands the handler a
``Malformed`` marker, and the wrapper answers INVALID_ARGUMENT with the parser's reason.

With a gate (``mmiobus.server.authz``), the same wrappers authenticate each call and check the
role its RPC needs before the handler runs (and, for a stream of accesses, each message). Without
one they do exactly what they did before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import message, message_factory
from google.protobuf.descriptor import ServiceDescriptor

from .. import peer_log
from ..authz import RULES, Gate, MessageCheck, StreamCheck, UnaryCheck


class Malformed:
    """Stands in for a request message that failed to parse (or was too large)."""

    __slots__ = ("code", "reason")

    def __init__(
        self, reason: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    ) -> None:
        self.reason = reason
        self.code = code

    async def refuse(self, context: grpc.aio.ServicerContext) -> None:
        """End the call with this status, and say so in one warning line naming the peer
        (rate-limited: ``mmiobus.server.peer_log``)."""
        peer_log.warn("malformed message", context.peer() or "", reason=self.reason)
        await context.abort(self.code, self.reason)


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


def _unary(method: Callable[..., Any], check: UnaryCheck | None) -> Callable[..., Any]:
    if check is not None:

        async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if type(request) is Malformed:
                await request.refuse(context)
            refusal = check(request, context)
            if refusal is not None:
                await context.abort(*refusal)
            return await method(request, context)

        return checked

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if type(request) is Malformed:
            await request.refuse(context)
        return await method(request, context)

    return handler


def _unary_stream(method: Callable[..., Any], check: UnaryCheck | None) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if type(request) is Malformed:
            await request.refuse(context)
        if check is not None:
            refusal = check(request, context)
            if refusal is not None:
                await context.abort(*refusal)
        async for item in method(request, context):
            yield item

    return handler


class _CheckedIterator:
    """The request stream, turning a message that did not parse into INVALID_ARGUMENT."""

    def __init__(
        self,
        it: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
        check: MessageCheck | None = None,
    ) -> None:
        self._it = it.__aiter__()
        self._context = context
        self._check = check

    def __aiter__(self) -> _CheckedIterator:
        return self

    async def __anext__(self) -> Any:
        item = await self._it.__anext__()
        if type(item) is Malformed:
            await item.refuse(self._context)
        if self._check is not None:
            refusal = self._check(item)
            if refusal is not None:
                await self._context.abort(*refusal)
        return item


def _stream_in(
    method: Callable[..., Any], streaming_out: bool, check: StreamCheck | None
) -> Callable[..., Any]:
    async def opened(it: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> _CheckedIterator:
        if check is None:
            return _CheckedIterator(it, context)
        refusal, each = check(context)
        if refusal is not None:
            await context.abort(*refusal)
        return _CheckedIterator(it, context, each)

    if streaming_out:

        async def handler(it: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            async for item in method(await opened(it, context), context):
                yield item

        return handler

    async def unary_handler(it: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await method(await opened(it, context), context)

    return unary_handler


def register(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    servicers: list[Any],
    max_message_bytes: int | None = None,
    gate: Gate | None = None,
) -> None:
    """Add the methods of ``service`` to ``server``, each taken from the servicer in
    ``servicers`` that has it, with tolerant parsing (and, with ``max_message_bytes``, a size
    limit that names its option; with ``gate``, authentication and the role ``authz.RULES``
    names). A method no servicer has, or no rule covers, is a bug, refused here."""
    handlers = {}
    for m in service.methods:
        path = f"/{service.full_name}/{m.name}"
        if path not in RULES:
            raise TypeError(f"authz.RULES says nothing of {path}: which role does it need?")
        request_cls = message_factory.GetMessageClass(m.input_type)
        response_cls = message_factory.GetMessageClass(m.output_type)
        impl = next((getattr(s, m.name) for s in servicers if hasattr(s, m.name)), None)
        if impl is None:
            raise TypeError(f"no servicer implements {service.full_name}.{m.name}")
        kw = {
            "request_deserializer": _tolerant(request_cls, max_message_bytes),
            "response_serializer": response_cls.SerializeToString,
        }
        if m.client_streaming:
            stream_check = gate.stream(path) if gate is not None else None
            h = (grpc.stream_stream_rpc_method_handler if m.server_streaming
                 else grpc.stream_unary_rpc_method_handler)(
                _stream_in(impl, m.server_streaming, stream_check), **kw
            )  # fmt: skip
        else:
            check = gate.unary(path) if gate is not None else None
            if m.server_streaming:
                h = grpc.unary_stream_rpc_method_handler(_unary_stream(impl, check), **kw)
            else:
                h = grpc.unary_unary_rpc_method_handler(_unary(impl, check), **kw)
        handlers[m.name] = h
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)
