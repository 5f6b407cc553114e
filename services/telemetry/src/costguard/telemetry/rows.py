"""Turn protobuf events into table rows, rejecting what Postgres must never see.

Each converter returns a tuple in the column order of its table, or raises
:class:`Rejected` naming the offending field (issue 3: "the event is rejected with the
field named, the rest of the batch is stored").
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from costguard.v1 import telemetry_pb2

JOB_COLUMNS = (
    "event_id", "job_name", "user_id", "tier", "domain", "job_type", "queued_at",
    "started_at", "finished_at", "duration_ms", "queue_wait_ms", "cpu_ms", "peak_mem_mb",
    "rows_read", "rows_written", "attempt", "success", "error_code", "episode_id",
    "podcast_id", "created_at",
)  # fmt: skip
LLM_COLUMNS = (
    "event_id", "user_id", "tier", "domain", "job_name", "provider", "model", "operation",
    "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
    "usage_reported", "latency_ms", "cache_hit", "insight_key", "success", "error_code",
    "episode_id", "podcast_id", "created_at",
)  # fmt: skip
COST_COLUMNS = (
    "event_id", "event_type", "service", "quantity", "unit", "metadata", "user_id", "tier",
    "episode_id", "podcast_id", "entities", "created_at",
)  # fmt: skip

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Rejected(Exception):
    field: str
    reason: str


def _event_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Rejected("event_id", f"must be a UUID, got {value[:40]!r}") from None


def _required(name: str, value: str) -> str:
    if not value:
        raise Rejected(name, "is required")
    return value


def _optional(value: str) -> str | None:
    return value or None


def _time(message: Message, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp = getattr(message, name)
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, UTC)


def job_row(event: telemetry_pb2.JobEvent, received_at: datetime) -> Row:
    return (
        _event_id(event.event_id),
        _required("job_name", event.job_name),
        _required("user_id", event.user_id),
        _required("tier", event.tier),
        event.domain or "default",
        _optional(event.job_type),
        _time(event, "queued_at"),
        _time(event, "started_at"),
        _time(event, "finished_at"),
        event.duration_ms,
        event.queue_wait_ms,
        event.cpu_ms,
        event.peak_mem_mb if event.peak_mem_mb else None,
        event.rows_read,
        event.rows_written,
        event.attempt or 1,
        event.success,
        _optional(event.error_code),
        _optional(event.episode_id),
        _optional(event.podcast_id),
        _time(event, "created_at") or received_at,
    )


def llm_row(event: telemetry_pb2.LlmEvent, received_at: datetime) -> Row:
    return (
        _event_id(event.event_id),
        _required("user_id", event.user_id),
        _required("tier", event.tier),
        event.domain or "default",
        _optional(event.job_name),
        event.provider or "openai",
        _required("model", event.model),
        event.operation or "chat.completions",
        event.input_tokens,
        event.cached_input_tokens,
        event.output_tokens,
        event.reasoning_tokens,
        event.usage_reported,
        event.latency_ms,
        event.cache_hit,
        _optional(event.insight_key),
        event.success,
        _optional(event.error_code),
        _optional(event.episode_id),
        _optional(event.podcast_id),
        _time(event, "created_at") or received_at,
    )


def cost_row(event: telemetry_pb2.CostEvent, received_at: datetime) -> Row:
    metadata = json_format.MessageToDict(event.metadata) if event.HasField("metadata") else {}
    return (
        _event_id(event.event_id),
        _required("event_type", event.event_type),
        _required("service", event.service),
        Decimal(repr(event.quantity)),
        _required("unit", event.unit),
        json.loads(json.dumps(metadata)),
        _optional(event.user_id),
        _optional(event.tier),
        _optional(event.episode_id),
        _optional(event.podcast_id),
        dict(event.entities),
        _time(event, "created_at") or received_at,
    )
