"""A request that cannot be decoded ends with INVALID_ARGUMENT naming what is wrong.

grpc.aio decodes a request before any handler runs, and a decoding error (a string field
holding bytes that are not UTF-8, most often, which proto3 refuses) would end the call
with UNKNOWN and a traceback: a client that retries on UNKNOWN would send the same bytes
forever. :func:`decoding` wraps each method's deserializer so that it
returns an :class:`Undecodable` instead of raising, and the method's handler so that it
answers one with ``INVALID_ARGUMENT``. The details name the field, found by walking the
wire format along the request's descriptor (``events[3].job.user_id: is not valid
UTF-8``), or say ``request: ...`` when no one field is to blame.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from grpc import aio

Context = aio.ServicerContext[Any, Any]
Deserializer = Callable[[bytes], Any]

# protobuf refuses messages nested deeper than 100; the walk stops there too.
_MAX_DEPTH = 100
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class Undecodable:
    """What the wrapped deserializer returns for bytes it cannot decode."""

    details: str


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]  # IndexError when truncated: the caller gives up
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _map_key(entry: bytes) -> str | None:
    """The text of a map entry's string key (field 1), if it has a valid one."""
    pos = 0
    while pos < len(entry):
        key, pos = _varint(entry, pos)
        if key & 7 != _LENGTH:
            return None
        length, pos = _varint(entry, pos)
        if key >> 3 == 1:
            return entry[pos : pos + length].decode("utf-8", "strict")
        pos += length
    return None


def bad_utf8_field(data: bytes, message: Descriptor, path: str = "", depth: int = 0) -> str | None:
    """The path of the first string field in ``data`` (a ``message``) that is not UTF-8."""
    if depth > _MAX_DEPTH:
        return None
    seen: dict[int, int] = {}
    # A map entry is named by its key (entities['show']), its value by the entry's name.
    entry = message.GetOptions().map_entry
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            _, pos = _varint(data, pos)
            continue
        if wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
            continue
        if wire != _LENGTH:
            return None  # groups, or not the wire format at all
        length, pos = _varint(data, pos)
        chunk, pos = data[pos : pos + length], pos + length
        field = message.fields_by_number.get(number)
        if field is None:
            continue
        name = path if entry and field.name == "value" else _name(path, field, seen, chunk)
        found = _bad_utf8_in(chunk, field, name, depth)
        if found is not None:
            return found
    return None


def _name(path: str, field: FieldDescriptor, seen: dict[int, int], chunk: bytes) -> str:
    name = f"{path}.{field.name}" if path else field.name
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        try:
            key = _map_key(chunk)
        except (IndexError, UnicodeDecodeError):
            key = None
        if key is not None:
            return f"{name}[{key!r}]"
    if field.is_repeated:
        index = seen.get(field.number, 0)
        seen[field.number] = index + 1
        return f"{name}[{index}]"
    return name


def _bad_utf8_in(chunk: bytes, field: FieldDescriptor, name: str, depth: int) -> str | None:
    if field.type == FieldDescriptor.TYPE_STRING:
        try:
            chunk.decode("utf-8", "strict")
        except UnicodeDecodeError:
            return name
        return None
    if field.type != FieldDescriptor.TYPE_MESSAGE or field.message_type is None:
        return None
    return bad_utf8_field(chunk, field.message_type, name, depth + 1)


def explain(data: bytes, message: Descriptor) -> str:
    """The details of an INVALID_ARGUMENT for bytes that do not decode as ``message``."""
    try:
        field = bad_utf8_field(data, message)
    except IndexError:
        field = None
    if field is not None:
        return f"{field}: is not valid UTF-8"
    return f"request: is not a valid {message.full_name} message"


def _deserializer(decode: Deserializer, message: Descriptor) -> Deserializer:
    def deserialize(data: bytes) -> Any:
        try:
            return decode(data)
        except DecodeError:
            return Undecodable(explain(data, message))

    return deserialize


def _unary_request(behavior: Any) -> Any:
    async def handle(request: Any, context: Context) -> Any:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
        return await behavior(request, context)

    return handle


def _unary_request_streamed_reply(behavior: Any) -> Any:
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
        async for reply in behavior(request, context):
            yield reply

    return handle


async def _checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
    index = 0
    async for request in requests:
        if isinstance(request, Undecodable):
            details = f"{request.details} (request {index} of the stream)"
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, details)
        yield request
        index += 1


def _streamed_request(behavior: Any) -> Any:
    async def handle(requests: AsyncIterator[Any], context: Context) -> Any:
        return await behavior(_checked(requests, context), context)

    return handle


def _streamed_request_and_reply(behavior: Any) -> Any:
    async def handle(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        async for reply in behavior(_checked(requests, context), context):
            yield reply

    return handle


def _input_type(method: str) -> Descriptor | None:
    """The request message of ``/package.Service/Method``, from the generated code's pool."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        found = descriptor_pool.Default().FindServiceByName(service).FindMethodByName(name)
    except KeyError:
        return None
    return None if found is None else found.input_type


def _decoding(
    handler: grpc.RpcMethodHandler[Any, Any], decode: Deserializer, message: Descriptor
) -> Any:
    kinds: dict[tuple[bool, bool], tuple[Any, Any, Callable[[Any], Any]]] = {
        (False, False): (grpc.unary_unary_rpc_method_handler, handler.unary_unary, _unary_request),
        (True, False): (
            grpc.stream_unary_rpc_method_handler,
            handler.stream_unary,
            _streamed_request,
        ),
        (False, True): (
            grpc.unary_stream_rpc_method_handler,
            handler.unary_stream,
            _unary_request_streamed_reply,
        ),
        (True, True): (
            grpc.stream_stream_rpc_method_handler,
            handler.stream_stream,
            _streamed_request_and_reply,
        ),
    }
    make, behavior, wrap = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        wrap(behavior),
        request_deserializer=_deserializer(decode, message),
        response_serializer=handler.response_serializer,
    )


def decoding(method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Any:
    """``handler`` of ``method`` (``/package.Service/Method``), answering a request that does
    not decode with INVALID_ARGUMENT (see the module); as it is when it decodes nothing."""
    message = _input_type(method)
    if handler.request_deserializer is None or message is None:
        return handler
    return _decoding(handler, handler.request_deserializer, message)
