"""``record_llm_event`` and ``track_cost_event(s)``: the SDK's event constructors.

Each builds a protobuf event with a fresh ``event_id`` (so a retry is stored once; a
``CostEvent`` may bring its own, so that two reports of one operation are stored once),
fills attribution from the explicit arguments or the current ``UserContext``, and hands
it to the client's buffer. None of them blocks or raises on telemetry failure. A cost
event whose names costguard does not price (docs/cost-events.md) is recorded all the same,
with one warning per distinct unknown ``(event_type, service, unit)``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, current_user_context
from costguard.sdk._default import default_client
from costguard.sdk._vocabulary import check as check_vocabulary
from costguard.v1 import telemetry_pb2

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_TYPE = "general"  # what an LLM call is for when nobody says


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def new_event_id() -> str:
    """A random (version 4) UUID as text, about three times cheaper than ``str(uuid4())``.

    From ``os.urandom`` like ``uuid4``: a seeded PRNG would repeat across forked workers,
    and a repeated id would make the service drop a real event as a duplicate.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def stamp_ns(epoch_ns: int) -> Timestamp:
    """A Timestamp from ``time.time_ns()``: cheaper than going through a datetime."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    return Timestamp(seconds=seconds, nanos=nanos)


@dataclass(frozen=True)
class LlmCall:
    """One LLM call. Token counts follow the OpenTelemetry GenAI conventions:
    ``input_tokens`` include ``cached_input_tokens``; ``output_tokens`` include
    ``reasoning_tokens`` and ``output_image_tokens`` (generated images, billed at the
    model's output image rate). ``usage_reported=False`` means the provider did not report
    them: they are estimates (``instrument_openai`` counts them locally) or unknown.
    ``context_type`` says what the call was for (``insight``, ``summary``, ``chat``, ...);
    empty takes the user context's, else :data:`DEFAULT_CONTEXT_TYPE`."""

    llm_model: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    output_image_tokens: int = 0
    duration_ms: int = 0
    success: bool = True
    error_code: str = ""
    cache_hit: bool = False
    usage_reported: bool = True
    provider: str = "openai"
    operation: str = "chat.completions"
    insight_key: str = ""
    job_name: str = ""
    context_type: str = ""
    user_ctx: UserContext | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class CostEvent:
    """One billable operation (seed two): an AI call, an S3 request, an email, a Lambda
    invocation... The names and metadata costguard prices are in docs/cost-events.md, e.g.
    ``CostEvent("ai_api_call", "gemini_text", 1500, "tokens", {"model": "gemini-2.0-flash",
    "input_tokens": 1200, "output_tokens": 300, "operation": "generateText"})``."""

    event_type: str
    service: str
    quantity: float
    unit: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user_ctx: UserContext | None = None
    episode_id: str = ""
    podcast_id: str = ""
    entities: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    # Empty: a fresh id. Set it when two reporters may see the same operation (a Lambda
    # invocation reported by its caller and by the function itself): the service stores
    # one event per id, the first to arrive, and answers the other one as a duplicate.
    event_id: str = ""


def _resolve(client: TelemetryClient | None) -> TelemetryClient:
    return client if client is not None else default_client()


def llm_event_message(call: LlmCall) -> telemetry_pb2.TelemetryEvent:
    ctx = call.user_ctx or current_user_context() or UserContext("", "")
    event = telemetry_pb2.LlmEvent(
        event_id=new_event_id(),
        user_id=ctx.user_id,
        tier=ctx.tier,
        domain=ctx.domain,
        job_name=call.job_name,
        provider=call.provider,
        llm_model=call.llm_model,
        operation=call.operation,
        input_tokens=call.input_tokens,
        cached_input_tokens=call.cached_input_tokens,
        output_tokens=call.output_tokens,
        reasoning_tokens=call.reasoning_tokens,
        output_image_tokens=call.output_image_tokens,
        usage_reported=call.usage_reported,
        duration_ms=call.duration_ms,
        context_type=call.context_type or ctx.context_type or DEFAULT_CONTEXT_TYPE,
        cache_hit=call.cache_hit,
        insight_key=call.insight_key,
        success=call.success,
        error_code=call.error_code,
        episode_id=ctx.episode_id,
        podcast_id=ctx.podcast_id,
        created_at=stamp(call.created_at) if call.created_at else stamp_ns(time.time_ns()),
    )
    return telemetry_pb2.TelemetryEvent(llm=event)


def cost_event_message(event: CostEvent) -> telemetry_pb2.TelemetryEvent:
    ctx = event.user_ctx or current_user_context()
    metadata = Struct()
    metadata.update(dict(event.metadata))
    message = telemetry_pb2.CostEvent(
        event_id=event.event_id or new_event_id(),
        event_type=event.event_type,
        service=event.service,
        quantity=event.quantity,
        unit=event.unit,
        metadata=metadata,
        user_id=ctx.user_id if ctx else "",
        tier=ctx.tier if ctx else "",
        episode_id=event.episode_id or (ctx.episode_id if ctx else ""),
        podcast_id=event.podcast_id or (ctx.podcast_id if ctx else ""),
        entities={**(ctx.entities if ctx else {}), **event.entities},
        created_at=stamp(event.created_at) if event.created_at else stamp_ns(time.time_ns()),
    )
    return telemetry_pb2.TelemetryEvent(cost=message)


def record_llm_event(evt: LlmCall, *, client: TelemetryClient | None = None) -> None:
    """Record one LLM call; attribution comes from ``evt.user_ctx`` or the current context."""
    try:
        _resolve(client).emit(llm_event_message(evt))
    except Exception:  # telemetry never breaks the caller
        log.exception("could not record an LLM event")


def track_cost_event(
    event_type: str,
    service: str,
    quantity: float,
    unit: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    user_ctx: UserContext | None = None,
    episode_id: str = "",
    podcast_id: str = "",
    entities: Mapping[str, str] | None = None,
    client: TelemetryClient | None = None,
) -> None:
    """Record one billable operation (seed two's ``trackCostEvent``), attributed to an
    entity; see :class:`CostEvent`."""
    track_cost_events(
        [
            CostEvent(
                event_type,
                service,
                quantity,
                unit,
                metadata or {},
                user_ctx,
                episode_id,
                podcast_id,
                entities or {},
            )
        ],
        client=client,
    )


def track_cost_events(
    events: Iterable[CostEvent], *, client: TelemetryClient | None = None
) -> None:
    """Record several billable operations at once (seed two's ``trackCostEventBatch``)."""
    try:
        target = _resolve(client)
        for event in events:
            check_vocabulary(event.event_type, event.service, event.unit)
            target.emit(cost_event_message(event))
    except Exception:  # telemetry never breaks the caller
        log.exception("could not record cost events")


track_cost_event_batch = track_cost_events
