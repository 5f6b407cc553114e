"""OTLP GenAI spans as costguard LLM events: the pure mapping, no I/O.

A span whose attributes follow the OpenTelemetry GenAI semantic conventions (or
OpenInference's) becomes the same ``LlmEvent`` the SDK sends, so the ingestor validates,
prices and counts it exactly as an SDK call. Any other span maps to None (ignored). A cost
the span reports for itself (``gen_ai.usage.cost``) is read exactly, as a Decimal, to be
stored beside costguard's own price, never instead of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

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
# Where instrumentations put what they think a call cost, in USD (first found).
COST_ATTRIBUTES = ("gen_ai.usage.cost", "gen_ai.cost.total_cost")
# Bounds of a reported cost worth keeping: one call costs less than this many dollars, and
# Postgres' numeric keeps at most 16383 decimal places (asyncpg would fail the whole batch).
_MAX_REPORTED_COST = Decimal(1_000_000)
_MIN_EXPONENT = -60


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


class UnusableCost(ValueError):
    """A reported cost that is not a finite amount of dollars >= 0: the span is stored
    without it (a bad side figure is no reason to lose the call)."""


def reported_cost(attrs: Attributes) -> Decimal | None:
    """The cost the span reports for itself, exactly; None when it reports none.

    A double is read through its ``repr``, the shortest text that is that double
    (0.1, not 0.1000000000000000055...): no float arithmetic touches the amount.
    """
    for name in COST_ATTRIBUTES:
        if name in attrs:
            return _amount(name, attrs[name])
    return None


def _amount(name: str, value: str | int | float | bool) -> Decimal:
    if isinstance(value, bool):
        raise UnusableCost(f"{name} is a boolean")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise UnusableCost(f"{name} is not a number: {text[:40]!r}") from None
    if not amount.is_finite() or amount < 0 or amount > _MAX_REPORTED_COST:
        raise UnusableCost(f"{name} is not an amount from 0 to {_MAX_REPORTED_COST}: {text[:40]}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < _MIN_EXPONENT:
        raise UnusableCost(f"{name} has more than {-_MIN_EXPONENT} decimal places")
    return amount


@dataclass(frozen=True)
class GenAiCall:
    """A GenAI span read: its event, the cost it reported (None: none, or ignored) and, when
    a reported cost was ignored, why."""

    event: telemetry_pb2.LlmEvent
    reported_cost: Decimal | None = None
    cost_problem: str = ""


def genai_call(span: trace_pb2.Span, resource: Attributes, defaults: Defaults) -> GenAiCall | None:
    """The span as an LLM event with its reported cost, or None when it is not a GenAI span."""
    attrs = attributes(span.attributes)
    if not is_genai(attrs):
        return None
    event = _event(span, attrs, resource, defaults)
    try:
        return GenAiCall(event, reported_cost(attrs))
    except UnusableCost as exc:
        return GenAiCall(event, None, str(exc))


def llm_event(
    span: trace_pb2.Span, resource: Attributes, defaults: Defaults
) -> telemetry_pb2.LlmEvent | None:
    """The span as an LLM event, or None when it is not a GenAI span."""
    call = genai_call(span, resource, defaults)
    return None if call is None else call.event


def _event(
    span: trace_pb2.Span, attrs: Attributes, resource: Attributes, defaults: Defaults
) -> telemetry_pb2.LlmEvent:
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
