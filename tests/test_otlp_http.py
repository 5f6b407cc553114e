"""OTLP/HTTP in: spans sent by the real OpenTelemetry SDK through the real OTLP/HTTP
exporter, raw requests (JSON, gzip, each refusal the spec names), and an app instrumented by
opentelemetry-instrumentation-openai-v2 calling the real ``openai`` client against the fake
OpenAI server, to the real telemetry server (``POST /v1/traces``, and the gRPC port), read
back from Postgres."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, cast

import asyncpg
import httpx
import pytest
from google.rpc.status_pb2 import Status
from openai import AsyncOpenAI
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from costguard.devstack import LocalPostgres
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.event_tables import SDK, Origin
from costguard.telemetry.ingest import IngestResult
from costguard.telemetry.otlp import event_id
from costguard.telemetry.otlp_http import MAX_BODY_BYTES, RETRY_AFTER_SECONDS
from costguard.telemetry.server import build
from costguard.v1 import telemetry_pb2
from tests.fake_openai import serve_fake_openai
from tests.processes import poll_until
from tests.test_otlp_ingest import CHAT, STARTED, TOKEN, chat_spans, export_request, make_span
from tests.test_otlp_ingest import sdk_cost as sdk_cost_of

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Otlp:
    grpc_addr: str
    traces_url: str


@asynccontextmanager
async def _serving(env: dict[str, str]) -> AsyncIterator[Otlp]:
    telemetry = await build(TelemetryConfig.from_env({**env, "COSTGUARD_SERVICE_TOKEN": TOKEN}))
    telemetry.reconciler.start()
    port = await telemetry.server.start()
    http_port = telemetry.otlp_http.port
    try:
        yield Otlp(f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}/v1/traces")
    finally:
        await telemetry.server.stop()


@pytest.fixture
async def otlp(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[Otlp]:
    """The real telemetry server, requiring the service token, on free ports."""
    async with _serving(service_env) as serving:
        yield serving


def _finished(make: Callable[[TracerProvider], None]) -> list[ReadableSpan]:
    """Spans made by the real SDK, kept to be exported (again) by the test."""
    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    make(provider)
    provider.shutdown()
    return list(kept.get_finished_spans())


def _spans_counted(outcome: str) -> float:
    sample = REGISTRY.get_sample_value("costguard_otlp_spans_total", {"outcome": outcome})
    return sample or 0.0


async def test_the_http_exporter_stores_genai_spans_once(otlp: Otlp, db: asyncpg.Pool) -> None:
    spans = _finished(chat_spans)
    assert len(spans) == 2  # a chat span and a health check's
    exporter: SpanExporter = OTLPSpanExporter(  # SpanExporter: its shutdown is typed there
        endpoint=otlp.traces_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        compression=Compression.Gzip,
    )
    ignored, duplicate = _spans_counted("ignored"), _spans_counted("duplicate")
    for _ in range(2):  # the second time as an exporter's retry whose reply was lost
        assert await asyncio.to_thread(exporter.export, spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    rows = await db.fetch("SELECT * FROM telemetry_llm_events")
    assert len(rows) == 1
    row = rows[0]
    assert (row["provider"], row["llm_model"]) == ("openai", "gpt-4o-mini-2024-07-18")
    assert (row["input_tokens"], row["cached_input_tokens"]) == (1000, 200)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (300, 50)
    assert (row["user_id"], row["tier"]) == ("user-otlp", "pro")
    assert (row["source"], row["reported_cost_usd"]) == ("otlp", Decimal("0.0123"))
    assert row["cost_usd"] == await sdk_cost_of(otlp.grpc_addr, db, row)  # our own price
    assert _spans_counted("ignored") == ignored + 2
    assert _spans_counted("duplicate") == duplicate + 1


async def test_a_wrong_token_fails_the_export(otlp: Otlp, db: asyncpg.Pool) -> None:
    exporter: SpanExporter = OTLPSpanExporter(
        endpoint=otlp.traces_url, headers={"Authorization": "Bearer wrong"}, timeout=5
    )
    result = await asyncio.to_thread(exporter.export, _finished(chat_spans))
    exporter.shutdown()
    assert result is SpanExportResult.FAILURE
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 0


async def _post(
    url: str,
    body: bytes,
    content_type: str = PROTOBUF,
    *,
    token: str | None = TOKEN,
    **headers: str,
) -> httpx.Response:
    sent = {"Content-Type": content_type, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, content=body, headers=sent)


def _status(response: httpx.Response) -> Status:
    """The google.rpc.Status body of a refusal, in the request's encoding."""
    if response.headers["content-type"].startswith("application/json"):
        status = Status()
        document = response.json()
        status.code, status.message = document["code"], document["message"]
        return status
    return Status.FromString(response.content)


def _json_request(trace_id: str, span_id: str) -> dict[str, object]:
    """OTLP JSON as the spec spells it: hex ids, int64 as strings or numbers, camelCase."""
    attributes = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 20}},
        {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.00042}},
        {"key": "enduser.id", "value": {"stringValue": "json-user"}},
    ]
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": "",
        "name": "chat gpt-4o-mini",
        "kind": 3,
        "startTimeUnixNano": str(STARTED),
        "endTimeUnixNano": STARTED + 400_000_000,
        "attributes": attributes,
        "links": [{"traceId": trace_id, "spanId": "0102030405060708"}],
        "status": {"code": 1},
        "futureField": {"a": 1},  # unknown fields are ignored
    }
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json"}}]
                },
                "scopeSpans": [{"scope": {"name": "raw"}, "spans": [span]}],
            }
        ]
    }


async def test_an_otlp_json_body_is_stored_with_its_hex_ids(otlp: Otlp, db: asyncpg.Pool) -> None:
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    body = json.dumps(_json_request(trace_id, span_id)).encode()
    response = await _post(otlp.traces_url, body, "application/json; charset=utf-8")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}  # nothing rejected, nothing ignored
    row = await db.fetchrow("SELECT * FROM telemetry_llm_events")
    assert row is not None
    assert str(row["event_id"]) == event_id(bytes.fromhex(trace_id), bytes.fromhex(span_id))
    assert (row["input_tokens"], row["output_tokens"], row["user_id"]) == (100, 20, "json-user")
    assert row["duration_ms"] == 400
    assert (row["source"], row["reported_cost_usd"]) == ("otlp", Decimal("0.00042"))


async def test_a_gzip_protobuf_body_is_stored_and_answered_in_protobuf(
    otlp: Otlp, db: asyncpg.Pool
) -> None:
    ignored = make_span({"http.method": "GET"})
    ignored.span_id = bytes(range(2, 10))
    body = export_request(make_span(CHAT), ignored).SerializeToString()
    response = await _post(otlp.traces_url, gzip.compress(body), **{"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == PROTOBUF
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_spans == 0
    assert reply.partial_success.error_message == "1 non-GenAI spans ignored"
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 1


async def test_a_rejected_span_is_named_in_the_json_reply(otlp: Otlp, db: asyncpg.Pool) -> None:
    document = _json_request("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]  # type: ignore[index]
    spans[0]["attributes"][2]["value"] = {"intValue": "-5"}  # negative input tokens
    response = await _post(otlp.traces_url, json.dumps(document).encode(), "application/json")
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64, as OTLP JSON writes it
    assert "span eee19b7ec3c1b174: input_tokens" in partial["errorMessage"]
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 0


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no token", "wrong token"])
@pytest.mark.parametrize("content_type", [PROTOBUF, "application/json"])
async def test_a_request_without_the_token_is_refused(
    otlp: Otlp, db: asyncpg.Pool, token: str | None, content_type: str
) -> None:
    body = export_request(make_span(CHAT)).SerializeToString()
    response = await _post(otlp.traces_url, body, content_type, token=token)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(content_type)
    assert _status(response).code == 16  # UNAUTHENTICATED
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 0


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (PROTOBUF, b"\xff\xff\xff\xff garbage"),
        ("application/json", b"{not json"),
        (
            "application/json",
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
        ),
        ("application/json", b'{"resourceSpans": "many"}'),
        ("application/json", b"[1]"),
        ("application/json", b"[" * 100_000),
    ],
    ids=["protobuf", "json", "hex", "shape", "not an object", "deep"],
)
async def test_an_undecodable_body_is_400_with_a_status(
    otlp: Otlp, content_type: str, body: bytes
) -> None:
    response = await _post(otlp.traces_url, body, content_type)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(content_type)
    status = _status(response)
    assert status.code == 3  # INVALID_ARGUMENT
    assert status.message.startswith("undecodable request")


async def test_a_truncated_gzip_body_is_400(otlp: Otlp) -> None:
    body = gzip.compress(export_request(make_span(CHAT)).SerializeToString())
    response = await _post(otlp.traces_url, body[:-12], **{"Content-Encoding": "gzip"})
    assert response.status_code == 400


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip bomb"])
async def test_a_body_over_the_limit_is_413(otlp: Otlp, compressed: bool) -> None:
    body = b"\x00" * (MAX_BODY_BYTES + 1)
    headers = {"Content-Encoding": "gzip"} if compressed else {}
    sent = gzip.compress(body) if compressed else body
    if compressed:
        assert len(sent) < MAX_BODY_BYTES // 100  # small on the wire, huge once inflated
    response = await _post(otlp.traces_url, sent, **headers)
    assert response.status_code == 413
    assert _status(response).code == 8  # RESOURCE_EXHAUSTED


async def test_another_content_type_is_415_and_another_method_405(otlp: Otlp) -> None:
    response = await _post(otlp.traces_url, b"hello", "text/plain")
    assert response.status_code == 415
    body = export_request(make_span(CHAT)).SerializeToString()
    response = await _post(otlp.traces_url, body, **{"Content-Encoding": "br"})
    assert response.status_code == 415
    async with httpx.AsyncClient() as client:
        response = await client.get(otlp.traces_url)
    assert response.status_code == 405


async def test_postgres_down_is_503_with_retry_after(
    own_postgres: LocalPostgres, service_env: dict[str, str]
) -> None:
    async with _serving({**service_env, "DATABASE_URL": own_postgres.dsn}) as serving:
        await asyncio.to_thread(own_postgres.stop)
        try:
            body = export_request(make_span(CHAT)).SerializeToString()
            response = await _post(serving.traces_url, body)
        finally:
            await asyncio.to_thread(own_postgres.start)
        assert response.status_code == 503
        assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        assert _status(response).code == 14  # UNAVAILABLE


async def test_the_http_listener_starts_and_stops_with_the_grpc_server(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    async with _serving(service_env) as serving:
        body = export_request(make_span(CHAT)).SerializeToString()
        assert (await _post(serving.traces_url, body)).status_code == 200
    with pytest.raises(httpx.ConnectError):
        await _post(serving.traces_url, body)


class _Instrumentor(Protocol):
    """What the test uses of an instrumentor (openai-v2's carries no annotations)."""

    def instrument(self, **kwargs: Any) -> None: ...

    def uninstrument(self, **kwargs: Any) -> None: ...


def _exporter(otlp: Otlp, transport: str, monkeypatch: pytest.MonkeyPatch) -> SpanExporter:
    """The exporter an instrumented app makes, configured only by the README's variables."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer {TOKEN}")
    if transport == "http":
        endpoint = otlp.traces_url.removesuffix("/v1/traces")  # the exporter adds the path
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        return OTLPSpanExporter()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{otlp.grpc_addr}")
    return GrpcSpanExporter()


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_an_app_instrumented_by_openai_v2_is_priced_from_its_spans(
    otlp: Otlp, db: asyncpg.Pool, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "instrumented-app"}))
    # A batch processor exports from its own thread: a simple one would export on this
    # loop's thread, where the telemetry server under test must answer it.
    provider.add_span_processor(BatchSpanProcessor(_exporter(otlp, transport, monkeypatch)))
    instrumentor = cast(Callable[[], _Instrumentor], OpenAIInstrumentor)()
    instrumentor.instrument(tracer_provider=provider)
    try:
        async with serve_fake_openai() as fake:
            client = AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
            reply = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Spend this week?"}]
            )
            await client.close()
        assert await asyncio.to_thread(provider.force_flush)
    finally:
        instrumentor.uninstrument()  # the openai module is patched process-wide
        await asyncio.to_thread(provider.shutdown)
    assert reply.usage is not None
    row = await db.fetchrow("SELECT * FROM telemetry_llm_events")
    assert row is not None
    assert (row["provider"], row["llm_model"], row["operation"]) == (
        "openai",
        fake.model,
        "chat.completions",
    )
    assert (row["input_tokens"], row["output_tokens"]) == (
        fake.usage.input_tokens,
        fake.usage.output_tokens,
    )
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        row["input_tokens"],
        row["output_tokens"],
    )
    # openai-v2 2.4b0 records no cached or reasoning tokens (nor a cost): the call is priced
    # from input and output alone.
    assert (row["cached_input_tokens"], row["reasoning_tokens"]) == (0, 0)
    assert row["usage_reported"]
    assert (row["user_id"], row["tier"]) == ("otel:instrumented-app", "free")
    assert (row["source"], row["reported_cost_usd"]) == ("otlp", None)
    assert row["cost_usd"] == await sdk_cost_of(otlp.grpc_addr, db, row)


async def test_a_taken_otlp_http_port_fails_start_up_naming_it(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        telemetry = await build(
            TelemetryConfig.from_env({**service_env, "OTLP_HTTP_PORT": str(taken)})
        )
        try:
            with pytest.raises(
                OSError, match=f"OTLP_HTTP_PORT: cannot listen on 127.0.0.1:{taken}"
            ):
                await telemetry.server.start()
        finally:
            await telemetry.server.stop()


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


async def test_a_request_in_flight_at_shutdown_is_answered_before_the_pool_closes(
    db: asyncpg.Pool, service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = await build(TelemetryConfig.from_env(service_env))
    store = telemetry.ingestor.store
    entered, release = asyncio.Event(), asyncio.Event()

    async def held_store(
        events: Sequence[telemetry_pb2.TelemetryEvent], *, batch: int = 0, origin: Origin = SDK
    ) -> IngestResult:
        entered.set()
        await release.wait()  # the real store, once the server is shutting down
        return await store(events, batch=batch, origin=origin)

    monkeypatch.setattr(telemetry.ingestor, "store", held_store)
    await telemetry.server.start()
    port = telemetry.otlp_http.port
    body = export_request(make_span(CHAT)).SerializeToString()
    sending = asyncio.create_task(_post(f"http://127.0.0.1:{port}/v1/traces", body))
    await entered.wait()
    stopping = asyncio.create_task(telemetry.server.stop())

    async def draining() -> bool:
        return _refuses(port)  # no new connection, the one in flight kept

    await poll_until(draining)
    release.set()
    response = await sending
    await stopping
    assert response.status_code == 200
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 1
