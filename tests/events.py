"""Builders for protobuf events in tests: valid by default, overridable per field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from costguard.v1 import telemetry_pb2


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def job(**fields: Any) -> telemetry_pb2.TelemetryEvent:
    values: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "job_name": "transcribe",
        "user_id": "u1",
        "tier": "free",
        "cpu_ms": 100,
        "success": True,
        "created_at": ts(datetime.now(UTC)),
    }
    values.update(fields)
    return telemetry_pb2.TelemetryEvent(job=telemetry_pb2.JobEvent(**values))


def llm(**fields: Any) -> telemetry_pb2.TelemetryEvent:
    values: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "user_id": "u1",
        "tier": "free",
        "llm_model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 200,
        "usage_reported": True,
        "success": True,
        "created_at": ts(datetime.now(UTC)),
    }
    values.update(fields)
    return telemetry_pb2.TelemetryEvent(llm=telemetry_pb2.LlmEvent(**values))


def cost(**fields: Any) -> telemetry_pb2.TelemetryEvent:
    values: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "s3_operation",
        "service": "s3_put",
        "quantity": 1.0,
        "unit": "requests",
        "created_at": ts(datetime.now(UTC)),
    }
    values.update(fields)
    return telemetry_pb2.TelemetryEvent(cost=telemetry_pb2.CostEvent(**values))


def batch(*events: telemetry_pb2.TelemetryEvent) -> telemetry_pb2.RecordRequest:
    return telemetry_pb2.RecordRequest(events=list(events))
