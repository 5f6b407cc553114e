"""OTLP/HTTP: ``POST /v1/traces`` on ``OTLP_HTTP_PORT``, in the telemetry service's own loop.

As the OTLP/HTTP specification asks (opentelemetry-proto, docs/specification.md): the body
is an ``ExportTraceServiceRequest`` in binary protobuf (``application/x-protobuf``) or OTLP
JSON (``application/json``), plain or gzip-compressed; the reply, and a failure's
``google.rpc.Status``, come back in the request's encoding. 400: the body cannot be decoded;
401: no or a wrong service token (the gRPC port's check); 413: the body, compressed or
not, is larger than :data:`MAX_BODY_BYTES`; 415: another content type or encoding; 503
(with ``Retry-After``): Postgres is unavailable, so exporters retry. The spans then go
through ``otlp_export.export_spans``, as on the gRPC port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import socket
import zlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.code_pb2 import INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAUTHENTICATED, UNAVAILABLE
from google.rpc.status_pb2 import Status
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from costguard.telemetry.ingest import Ingestor
from costguard.telemetry.otlp import Defaults
from costguard.telemetry.otlp_export import Request as ExportRequest
from costguard.telemetry.otlp_export import export_spans
from costguard.telemetry.servicer import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)

PATH = "/v1/traces"
# The largest body taken, before and after decompression (a few MiB of gzip can expand to
# gigabytes): the OpenTelemetry SDKs' exporters send batches of 512 spans, far below it.
MAX_BODY_BYTES = 4 * 1024 * 1024
RETRY_AFTER_SECONDS = 5
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# The OTLP JSON fields that hold ids as hex (protobuf's JSON mapping would read base64).
_HEX_IDS = ("traceId", "spanId", "parentSpanId")


class _Refused(Exception):
    """The request cannot be served: its HTTP status, gRPC-style code and why."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _encoded(message: Message, encoding: str, status: int = 200, **headers: str) -> Response:
    if encoding == JSON:
        body = json.dumps(json_format.MessageToDict(message)).encode()
    else:
        body = message.SerializeToString()
    return Response(body, status_code=status, media_type=encoding, headers=headers or None)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        return _gunzip(bytes(body))
    if encoding not in ("identity", ""):
        raise _Refused(415, INVALID_ARGUMENT, f"unsupported content-encoding {encoding}")
    return bytes(body)


def _too_large() -> _Refused:
    return _Refused(413, RESOURCE_EXHAUSTED, f"request body is larger than {MAX_BODY_BYTES} bytes")


def _gunzip(body: bytes) -> bytes:
    """The decompressed body, never more than the limit (a gzip bomb stops there)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise _Refused(400, INVALID_ARGUMENT, f"bad gzip body: {exc}") from None
    if len(out) > MAX_BODY_BYTES:
        raise _too_large()
    if not inflater.eof:
        raise _Refused(400, INVALID_ARGUMENT, "gzip body is truncated")
    return out


def _dicts(value: Any, key: str) -> list[dict[str, Any]]:
    """The objects under ``value[key]``; anything else is left for ParseDict to refuse."""
    found = value.get(key) if isinstance(value, dict) else None
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def _ids_as_base64(document: Any) -> None:
    """OTLP JSON spells trace and span ids in hex; protobuf's JSON mapping reads bytes as
    base64. Rewrite them in place, spans' and links' alike."""
    for resource_spans in _dicts(document, "resourceSpans"):
        for scope_spans in _dicts(resource_spans, "scopeSpans"):
            for span in _dicts(scope_spans, "spans"):
                for holder in (span, *_dicts(span, "links")):
                    for name in _HEX_IDS:
                        value = holder.get(name)
                        if isinstance(value, str):
                            holder[name] = base64.b64encode(bytes.fromhex(value)).decode()


def decode(body: bytes, media_type: str) -> ExportRequest:
    """The request in either encoding; :class:`_Refused` (400) when it is not one."""
    try:
        if media_type == PROTOBUF:
            return ExportRequest.FromString(body)
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("an OTLP JSON request is an object")
        _ids_as_base64(document)
        # Unknown fields are ignored, as the spec asks of receivers (newer senders).
        return json_format.ParseDict(document, ExportRequest(), ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise _Refused(400, INVALID_ARGUMENT, f"undecodable request: {exc}") from None


class TracesEndpoint:
    def __init__(self, ingestor: Ingestor, defaults: Defaults, token: str | None) -> None:
        self._ingestor = ingestor
        self._defaults = defaults
        self._expected = f"Bearer {token}".encode() if token else None

    def _authorized(self, request: Request) -> bool:
        if self._expected is None:
            return True
        presented = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(presented, self._expected)

    async def export(self, request: Request) -> Response:
        media_type = _media_type(request)
        encoding = JSON if media_type == JSON else PROTOBUF
        try:
            if not self._authorized(request):
                raise _Refused(401, UNAUTHENTICATED, "missing or invalid service token")
            if media_type not in (PROTOBUF, JSON):
                wanted = f"expected {PROTOBUF} or {JSON}, got {media_type or 'none'}"
                raise _Refused(415, INVALID_ARGUMENT, wanted)
            export = decode(await _read_body(request), media_type)
            try:
                reply = await export_spans(self._ingestor, self._defaults, export)
            except DATABASE_UNAVAILABLE as exc:
                log.warning("database unavailable", extra={"error": repr(exc)})
                raise _Refused(503, UNAVAILABLE, "database unavailable; retry the batch") from None
        except _Refused as refused:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if refused.status == 503 else {}
            status = Status(code=refused.code, message=refused.message)
            return _encoded(status, encoding, refused.status, **headers)
        return _encoded(reply, encoding)


def otlp_app(endpoint: TracesEndpoint) -> Starlette:
    """``POST /v1/traces``; any other method gets 405, as the spec asks."""
    return Starlette(routes=[Route(PATH, endpoint.export, methods=["POST"])])


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The gRPC server's serve_until_signal owns SIGTERM and SIGINT and stops this one.
        yield


class OtlpHttpServer:
    """uvicorn serving :func:`otlp_app` on ``host:port`` (0: a free port), as a task of the
    running loop; :meth:`stop` drains its requests within the grace period."""

    def __init__(self, app: Starlette, host: str, port: int, grace_s: float) -> None:
        self._app = app
        self._host = host
        self._wanted_port = port
        self._grace_s = grace_s
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> int:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # Bound and listening before uvicorn starts: an early request waits in the backlog,
        # and a port already taken fails start-up here, naming it.
        try:
            sock = socket.create_server((self._host, self._wanted_port), family=family)
        except OSError as exc:
            where = f"{self._host}:{self._wanted_port}"
            raise OSError(f"OTLP_HTTP_PORT: cannot listen on {where}: {exc}") from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            ws="none",
            http="h11",
            log_config=None,  # the entry point configured logging (JSON lines)
            access_log=False,
            timeout_graceful_shutdown=max(1, round(self._grace_s)),
        )
        self._server = _Uvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        log.info("otlp http serving", extra={"host": self._host, "port": self.port})
        return self.port

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        await task
