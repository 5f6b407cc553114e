"""OTLP GenAI spans as costguard LLM events: the pure mapping, no I/O.

A span whose attributes follow the OpenTelemetry GenAI semantic conventions (or
OpenInference's) becomes the same ``LlmEvent`` the SDK sends, so the ingestor validates,
prices and counts it exactly as an SDK call. Any other span maps to None (ignored).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from costguard.v1 import telemetry_pb2

# Fixed: the same trace and span ids always give the same event id, so a re-sent span
# is stored once.
SPAN_NAMESPACE = uuid.UUID("6f1d2c3a-8b4e-5f60-9a7b-1c2d3e4f5a6b")

Attributes = Mapping[str, str | int | float | bool]

# The semconv's provider names, as the price library (genai-prices) names them.
_PROVIDERS = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "az.ai.openai": "azure",
    "azure.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure.ai.inference": "azure",
}
# The SDK's operation names for the semconv's.
_OPERATIONS = {"chat": "chat.completions"}


@dataclass(frozen=True)
class Defaults:
    """What a span that does not say gets: env OTLP_DEFAULT_USER / OTLP_DEFAULT_TIER."""

    tier: str
    user: str | None = None


def attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, str | int | float | bool]:
    """The scalar attributes (arrays and maps carry nothing the mapping reads)."""
    out: dict[str, str | int | float | bool] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        if kind in ("string_value", "int_value", "double_value", "bool_value"):
            out[pair.key] = getattr(pair.value, kind)
    return out


def _text(attrs: Attributes, *names: str) -> str:
    for name in names:
        value = attrs.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _count(attrs: Attributes, *names: str) -> int | None:
    """A token count; a string of digits counts too (OTLP JSON sends int64 as text)."""
    for name in names:
        value = attrs.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
    return None


def is_genai(attrs: Attributes) -> bool:
    """A GenAI span: an operation name, or a provider with a model, or OpenInference's
    model name."""
    if _text(attrs, "gen_ai.operation.name", "llm.model_name"):
        return True
    has_provider = bool(_text(attrs, "gen_ai.system", "gen_ai.provider.name"))
    return has_provider and bool(_text(attrs, "gen_ai.request.model", "gen_ai.response.model"))


def provider(attrs: Attributes) -> str:
    named = _text(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    return _PROVIDERS.get(named.lower(), named.lower())


def event_id(trace_id: bytes, span_id: bytes) -> str:
    """uuid5 over the 24 id bytes: deterministic, so a re-sent span is one row."""
    return str(uuid.uuid5(SPAN_NAMESPACE, (trace_id + span_id).hex()))


def llm_event(
    span: trace_pb2.Span, resource: Attributes, defaults: Defaults
) -> telemetry_pb2.LlmEvent | None:
    """The span as an LLM event, or None when it is not a GenAI span."""
    attrs = attributes(span.attributes)
    if not is_genai(attrs):
        return None
    service = _text(resource, "service.name")
    user = (
        _text(attrs, "costguard.user_id", "enduser.id")
        or _text(resource, "costguard.user_id", "enduser.id")
        or defaults.user
        or f"otel:{service or 'unknown'}"
    )
    operation = _text(attrs, "gen_ai.operation.name") or "chat"
    event = telemetry_pb2.LlmEvent(
        event_id=event_id(span.trace_id, span.span_id),
        user_id=user,
        tier=_text(attrs, "costguard.tier") or _text(resource, "costguard.tier") or defaults.tier,
        domain=_text(attrs, "costguard.domain") or _text(resource, "costguard.domain") or "default",
        job_name=span.name,
        provider=provider(attrs),
        llm_model=_text(attrs, "gen_ai.response.model", "gen_ai.request.model", "llm.model_name"),
        operation=_OPERATIONS.get(operation, operation),
        duration_ms=max(0, span.end_time_unix_nano - span.start_time_unix_nano) // 1_000_000,
        success=span.status.code != trace_pb2.Status.STATUS_CODE_ERROR,
        episode_id=_text(attrs, "costguard.episode_id"),
        podcast_id=_text(attrs, "costguard.podcast_id"),
    )
    if not event.success:
        event.error_code = _text(attrs, "error.type") or "span_error"
    if span.start_time_unix_nano:
        event.created_at.FromNanoseconds(span.start_time_unix_nano)
    _usage(event, attrs)
    return event


def _usage(event: telemetry_pb2.LlmEvent, attrs: Attributes) -> None:
    """Token counts; none at all leaves usage unreported (the estimated path)."""
    figures = {
        "input_tokens": _count(attrs, "gen_ai.usage.input_tokens", "llm.token_count.prompt"),
        "output_tokens": _count(attrs, "gen_ai.usage.output_tokens", "llm.token_count.completion"),
        "cached_input_tokens": _count(
            attrs,
            "gen_ai.usage.cache_read.input_tokens",
            "llm.token_count.prompt_details.cache_read",
        ),
        "reasoning_tokens": _count(
            attrs,
            "gen_ai.usage.reasoning.output_tokens",
            "llm.token_count.completion_details.reasoning",
        ),
    }
    if all(value is None for value in figures.values()):
        return
    event.usage_reported = True
    for name, value in figures.items():
        setattr(event, name, value or 0)
