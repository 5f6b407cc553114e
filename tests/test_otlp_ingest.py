"""OTLP GenAI spans in: the pure mapping, and spans sent by the real OpenTelemetry SDK
through the real OTLP/gRPC exporter to the real telemetry server, read back from Postgres."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import REGISTRY

from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.otlp import Defaults, event_id, genai_call, llm_event
from costguard.telemetry.server import build_server
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc

TOKEN = "otlp-test-token"
DEFAULTS = Defaults(tier="free")
STARTED = time.time_ns() - 60 * 10**9  # a minute ago: not in the future for the ingestor


Scalar = str | int | float | bool


def _attr(key: str, value: Scalar) -> common_pb2.KeyValue:
    if isinstance(value, str):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))
    if isinstance(value, bool):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
    if isinstance(value, float):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(double_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))


def make_span(attrs: dict[str, Scalar]) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
        name="chat",
        start_time_unix_nano=STARTED,
        end_time_unix_nano=STARTED + 250_000_000,
        attributes=[_attr(k, v) for k, v in attrs.items()],
    )


def test_openinference_attributes_map_to_an_llm_event() -> None:
    span = make_span(
        {
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.token_count.prompt": 120,
            "llm.token_count.completion": 30,
            "llm.token_count.prompt_details.cache_read": 20,
            "llm.token_count.completion_details.reasoning": 5,
        }
    )
    event = llm_event(span, {}, DEFAULTS)
    assert event is not None
    assert (event.provider, event.llm_model, event.operation) == (
        "openai",
        "gpt-4o-mini",
        "chat.completions",
    )
    assert (event.input_tokens, event.cached_input_tokens) == (120, 20)
    assert (event.output_tokens, event.reasoning_tokens) == (30, 5)
    assert event.usage_reported
    assert event.duration_ms == 250
    assert event.created_at.ToNanoseconds() == span.start_time_unix_nano
    assert event.event_id == event_id(span.trace_id, span.span_id)


def test_user_and_tier_come_from_the_resource_when_the_span_has_none() -> None:
    span = make_span({"gen_ai.system": "gcp.gemini", "gen_ai.request.model": "gemini-2.5-flash"})
    event = llm_event(span, {"enduser.id": "u-9", "costguard.tier": "pro"}, DEFAULTS)
    assert event is not None
    assert (event.user_id, event.tier, event.provider) == ("u-9", "pro", "google")
    assert not event.usage_reported  # no token attribute: the estimated path


def test_defaults_name_the_service_and_the_first_tier() -> None:
    span = make_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})
    event = llm_event(span, {"service.name": "billing"}, DEFAULTS)
    assert event is not None
    assert (event.user_id, event.tier, event.domain) == ("otel:billing", "free", "default")
    assert llm_event(make_span({"http.method": "GET"}), {}, DEFAULTS) is None


CHAT: dict[str, Scalar] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        (0.1, Decimal("0.1")),  # the double's shortest text, not 0.1000000000000000055...
        (1.5e-07, Decimal("1.5E-7")),
        ("0.000123456789012345678", Decimal("0.000123456789012345678")),
        (" 2.50 ", Decimal("2.50")),
        (3, Decimal(3)),
        (0, Decimal(0)),
    ],
)
def test_a_reported_cost_is_read_exactly(value: Scalar, amount: Decimal) -> None:
    for name in ("gen_ai.usage.cost", "gen_ai.cost.total_cost"):
        call = genai_call(make_span({**CHAT, name: value}), {}, DEFAULTS)
        assert call is not None
        assert call.reported_cost == amount
        assert str(call.reported_cost) == str(amount)
        assert call.cost_problem == ""


@pytest.mark.parametrize(
    "value", [-0.01, "-1", float("inf"), float("nan"), "NaN", "cheap", True, "1e7", "1e-99"]
)
def test_an_unusable_reported_cost_is_ignored_not_the_span(value: Scalar) -> None:
    call = genai_call(make_span({**CHAT, "gen_ai.usage.cost": value}), {}, DEFAULTS)
    assert call is not None
    assert call.event.llm_model == "gpt-4o-mini"
    assert call.reported_cost is None
    assert call.cost_problem.startswith("gen_ai.usage.cost ")
    no_cost = genai_call(make_span(CHAT), {}, DEFAULTS)
    assert no_cost is not None
    assert (no_cost.reported_cost, no_cost.cost_problem) == (None, "")


@pytest.fixture
async def otlp_addr(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[str]:
    """The real telemetry server, requiring the service token."""
    server = await build_server(
        TelemetryConfig.from_env({**service_env, "COSTGUARD_SERVICE_TOKEN": TOKEN})
    )
    port = await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop()


class _Recording(SpanExporter):
    """Delegates to the real exporter and keeps each export's result."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def send_spans(exporter: SpanExporter, spans: Callable[[TracerProvider], None]) -> bool:
    """Make spans with the real SDK and export each as it ends (SimpleSpanProcessor) with
    ``exporter``; whether every export succeeded. Blocking: run in a thread, beside the
    server's loop."""
    recording = _Recording(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    provider.add_span_processor(SimpleSpanProcessor(recording))
    spans(provider)
    provider.shutdown()
    return bool(recording.results) and all(r is SpanExportResult.SUCCESS for r in recording.results)


def _send(addr: str, token: str, spans: Callable[[TracerProvider], None]) -> bool:
    exporter = OTLPSpanExporter(
        endpoint=addr, insecure=True, headers=(("authorization", f"Bearer {token}"),)
    )
    return send_spans(exporter, spans)


def chat_spans(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.cache_read.input_tokens": 200,
                "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.reasoning.output_tokens": 50,
                "costguard.user_id": "user-otlp",
                "costguard.tier": "pro",
                "costguard.domain": "insights",
                "costguard.episode_id": "ep-1",
                "costguard.podcast_id": "pod-1",
                "gen_ai.usage.cost": 0.0123,  # the instrumentation's own figure
            }
        )
    with tracer.start_as_current_span("GET /health"):
        pass


async def test_grpc_export_stores_genai_spans_once_priced_as_the_sdk(
    otlp_addr: str, db: asyncpg.Pool
) -> None:
    assert await asyncio.to_thread(_send, otlp_addr, TOKEN, chat_spans)
    rows = await db.fetch("SELECT * FROM telemetry_llm_events")
    assert len(rows) == 1  # the health span is ignored
    row = rows[0]
    assert (row["provider"], row["llm_model"], row["operation"]) == (
        "openai",
        "gpt-4o-mini-2024-07-18",
        "chat.completions",
    )
    assert (row["input_tokens"], row["cached_input_tokens"]) == (1000, 200)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (300, 50)
    assert (row["user_id"], row["tier"], row["domain"]) == ("user-otlp", "pro", "insights")
    assert (row["episode_id"], row["podcast_id"]) == ("ep-1", "pod-1")
    assert row["success"]
    assert row["usage_reported"]
    assert (row["source"], row["reported_cost_usd"]) == ("otlp", Decimal("0.0123"))

    # The same figures sent by the SDK's own RPC are priced the same; the span's reported
    # cost is kept beside that price.
    assert row["cost_usd"] is not None
    assert row["cost_usd"] == await sdk_cost(otlp_addr, db, row)
    assert row["cost_usd"] != row["reported_cost_usd"]


async def sdk_cost(addr: str, db: asyncpg.Pool, row: asyncpg.Record) -> Decimal:
    """What the SDK's own RPC stores for the figures of the stored span ``row``: its price,
    as an SDK row (source 'sdk', no reported cost)."""
    sdk_event = telemetry_pb2.LlmEvent(
        event_id="00000000-0000-4000-8000-000000000001",
        user_id=row["user_id"],
        tier=row["tier"],
        provider=row["provider"],
        llm_model=row["llm_model"],
        operation=row["operation"],
        input_tokens=row["input_tokens"],
        cached_input_tokens=row["cached_input_tokens"],
        output_tokens=row["output_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        usage_reported=row["usage_reported"],
        success=True,
    )
    sdk_event.created_at.CopyFrom(_timestamp(row["created_at"]))
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        reply = await stub.Record(
            telemetry_pb2.RecordRequest(events=[telemetry_pb2.TelemetryEvent(llm=sdk_event)]),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
        )
    assert reply.accepted == 1
    sdk_row = await db.fetchrow(
        "SELECT cost_usd, source, reported_cost_usd FROM telemetry_llm_events"
        " WHERE event_id = $1::uuid",
        sdk_event.event_id,
    )
    assert sdk_row is not None
    assert (sdk_row["source"], sdk_row["reported_cost_usd"]) == ("sdk", None)
    cost: Decimal = sdk_row["cost_usd"]
    return cost


def _ignored_costs() -> float:
    return REGISTRY.get_sample_value("costguard_otlp_reported_costs_ignored_total") or 0.0


async def test_a_span_with_a_negative_cost_is_stored_without_it(
    otlp_addr: str, db: asyncpg.Pool
) -> None:
    before = _ignored_costs()
    async with grpc.aio.insecure_channel(otlp_addr) as channel:
        reply = await channel.unary_unary(
            EXPORT,
            request_serializer=ExportTraceServiceRequest.SerializeToString,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )(
            export_request(make_span({**CHAT, "gen_ai.usage.cost": -0.5})),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
        )
    assert reply.partial_success.rejected_spans == 0
    row = await db.fetchrow("SELECT source, reported_cost_usd, cost_usd FROM telemetry_llm_events")
    assert row is not None
    assert (row["source"], row["reported_cost_usd"]) == ("otlp", None)
    assert row["cost_usd"] is not None
    assert _ignored_costs() == before + 1


async def test_a_span_sent_twice_is_one_row(otlp_addr: str, db: asyncpg.Pool) -> None:
    span = make_span(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
    )
    request = export_request(span)
    async with grpc.aio.insecure_channel(otlp_addr) as channel:
        for _ in range(2):
            reply = await channel.unary_unary(
                EXPORT,
                request_serializer=ExportTraceServiceRequest.SerializeToString,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )(request, metadata=(("authorization", f"Bearer {TOKEN}"),))
            assert reply.partial_success.rejected_spans == 0
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 1


async def test_a_bad_span_is_rejected_and_its_siblings_stored(
    otlp_addr: str, db: asyncpg.Pool
) -> None:
    good = make_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"})
    bad = make_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": -5,
        }
    )
    bad.span_id = bytes(range(1, 9))
    async with grpc.aio.insecure_channel(otlp_addr) as channel:
        reply = await channel.unary_unary(
            EXPORT,
            request_serializer=ExportTraceServiceRequest.SerializeToString,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )(export_request(good, bad), metadata=(("authorization", f"Bearer {TOKEN}"),))
    assert reply.partial_success.rejected_spans == 1
    assert bad.span_id.hex() in reply.partial_success.error_message
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 1


async def test_a_wrong_token_is_refused(otlp_addr: str, db: asyncpg.Pool) -> None:
    assert not await asyncio.to_thread(_send, otlp_addr, "wrong", chat_spans)
    async with grpc.aio.insecure_channel(otlp_addr) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(
                EXPORT,
                request_serializer=ExportTraceServiceRequest.SerializeToString,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )(export_request(make_span({"gen_ai.operation.name": "chat"})))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert await db.fetchval("SELECT count(*) FROM telemetry_llm_events") == 0


EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def export_request(*spans: trace_pb2.Span) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
