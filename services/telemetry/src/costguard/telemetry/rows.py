"""Turn protobuf events into table rows, or reject them with the field named."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import json_format

from costguard.telemetry import checks
from costguard.telemetry.checks import Rejected
from costguard.v1 import telemetry_pb2

__all__ = ["COST_COLUMNS", "JOB_COLUMNS", "LLM_COLUMNS", "Rejected", "Row", "RowBuilder"]

JOB_COLUMNS = (
    "event_id", "job_name", "user_id", "tier", "domain", "job_type", "queued_at",
    "started_at", "finished_at", "duration_ms", "queue_wait_ms", "cpu_ms", "mem_mb_peak",
    "rows_read", "rows_written", "attempt", "success", "error_code", "episode_id",
    "podcast_id", "created_at", "reservation_id", "job_id",
)  # fmt: skip
LLM_COLUMNS = (
    "event_id", "user_id", "tier", "domain", "job_name", "provider", "llm_model",
    "operation", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
    "usage_reported", "duration_ms", "cache_hit", "insight_key", "success", "error_code",
    "episode_id", "podcast_id", "created_at", "reservation_id", "context_type",
    "output_image_tokens",
)  # fmt: skip
COST_COLUMNS = (
    "event_id", "event_type", "service", "quantity", "unit", "metadata", "user_id", "tier",
    "episode_id", "podcast_id", "entities", "created_at",
)  # fmt: skip

Row = tuple[Any, ...]

# What an LLM call was for when the event does not say (the SDK writes the same default).
DEFAULT_CONTEXT_TYPE = "general"


@dataclass(frozen=True)
class RowBuilder:
    tiers: tuple[str, ...]
    received_at: datetime

    def job(self, event: telemetry_pb2.JobEvent) -> Row:
        queued = checks.moment(event, "queued_at", self.received_at)
        started = checks.moment(event, "started_at", self.received_at)
        finished = checks.moment(event, "finished_at", self.received_at)
        checks.in_order(("queued_at", queued), ("started_at", started), ("finished_at", finished))
        return (
            checks.event_id(event.event_id),
            checks.text("job_name", event.job_name, required=True),
            checks.text("user_id", event.user_id, required=True),
            checks.tier(event.tier, self.tiers),
            checks.text("domain", event.domain) or "default",
            checks.text("job_type", event.job_type),
            queued,
            started,
            finished,
            checks.count("duration_ms", event.duration_ms),
            checks.count("queue_wait_ms", event.queue_wait_ms),
            checks.count("cpu_ms", event.cpu_ms),
            checks.count("mem_mb_peak", event.mem_mb_peak),
            checks.count("rows_read", event.rows_read),
            checks.count("rows_written", event.rows_written),
            checks.count("attempt", event.attempt) or 1,
            event.success,
            checks.text("error_code", event.error_code),
            checks.text("episode_id", event.episode_id),
            checks.text("podcast_id", event.podcast_id),
            checks.moment(event, "created_at", self.received_at) or self.received_at,
            checks.text("reservation_id", event.reservation_id),
            checks.text("job_id", event.job_id),
        )

    def llm(self, event: telemetry_pb2.LlmEvent) -> Row:
        input_tokens = checks.count("input_tokens", event.input_tokens)
        output_tokens = checks.count("output_tokens", event.output_tokens)
        cached = checks.count("cached_input_tokens", event.cached_input_tokens)
        reasoning = checks.count("reasoning_tokens", event.reasoning_tokens)
        if cached > input_tokens:
            raise Rejected("cached_input_tokens", "exceeds input_tokens, which include them")
        if reasoning > output_tokens:
            raise Rejected("reasoning_tokens", "exceeds output_tokens, which include them")
        image = checks.count("output_image_tokens", event.output_image_tokens)
        if image > output_tokens:
            raise Rejected("output_image_tokens", "exceeds output_tokens, which include them")
        return (
            checks.event_id(event.event_id),
            checks.text("user_id", event.user_id, required=True),
            checks.tier(event.tier, self.tiers),
            checks.text("domain", event.domain) or "default",
            checks.text("job_name", event.job_name),
            checks.text("provider", event.provider) or "openai",
            checks.text("llm_model", event.llm_model, required=True),
            checks.text("operation", event.operation) or "chat.completions",
            input_tokens,
            cached,
            output_tokens,
            reasoning,
            event.usage_reported,
            checks.count("duration_ms", event.duration_ms),
            event.cache_hit,
            checks.text("insight_key", event.insight_key),
            event.success,
            checks.text("error_code", event.error_code),
            checks.text("episode_id", event.episode_id),
            checks.text("podcast_id", event.podcast_id),
            checks.moment(event, "created_at", self.received_at) or self.received_at,
            checks.text("reservation_id", event.reservation_id),
            checks.text("context_type", event.context_type) or DEFAULT_CONTEXT_TYPE,
            image,
        )

    def cost(self, event: telemetry_pb2.CostEvent) -> Row:
        try:
            metadata = (
                json_format.MessageToDict(event.metadata) if event.HasField("metadata") else {}
            )
        except ValueError:  # protobuf refuses to turn NaN or infinity into JSON
            raise Rejected("metadata", "holds a non-finite number") from None
        checks.json_value("metadata", metadata)
        checks.metadata_numbers(metadata)
        if len(json.dumps(metadata)) > checks.MAX_METADATA_BYTES:
            raise Rejected("metadata", f"is larger than {checks.MAX_METADATA_BYTES} bytes")
        entities = dict(event.entities)
        for key, value in entities.items():
            if not key or len(key) > 64 or len(value) > 64:
                raise Rejected("entities", "keys and values must be 1 to 64 characters")
            checks.json_value("entities", [key, value])
        quantity = checks.quantity(event.quantity, event.unit)
        return (
            checks.event_id(event.event_id),
            checks.text("event_type", event.event_type, required=True),
            checks.text("service", event.service, required=True),
            quantity,
            checks.text("unit", event.unit, required=True),
            metadata,
            checks.text("user_id", event.user_id),
            checks.tier(event.tier, self.tiers, required=False),
            checks.text("episode_id", event.episode_id),
            checks.text("podcast_id", event.podcast_id),
            entities,
            checks.moment(event, "created_at", self.received_at) or self.received_at,
        )
