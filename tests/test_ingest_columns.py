"""Rows built a batch at a time (``columns``) are exactly the rows built one event at a time.

``RowBuilder`` is the reference: for any events at all, each one's batch result is the row
``RowBuilder`` builds for it (a job or LLM row with its event id as the text sent, where
that is a UUID in canonical form) or the same rejection, naming the same field for the same
reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costguard.common.event_ranges import MAXIMUM
from costguard.telemetry.checks import MAX_LENGTH
from costguard.telemetry.columns import BUILDERS, Built
from costguard.telemetry.rows import Rejected, Row, RowBuilder
from costguard.v1 import telemetry_pb2
from tests.events import job, llm, ts
from tests.test_ingest_properties import cost_events, job_events, llm_events

TIERS = ("free", "pro", "enterprise")
NOW = datetime.now(UTC)


def _one_by_one(builder: RowBuilder, kind: str, messages: Sequence[Any]) -> list[Built]:
    builds: dict[str, Callable[[Any], Row]] = {
        "job": builder.job,
        "llm": builder.llm,
        "cost": builder.cost,
    }
    build = builds[kind]
    out: list[Built] = []
    for message in messages:
        try:
            out.append(build(message))
        except Rejected as exc:
            out.append(exc)
    return out


def _same(batch: Built, reference: Built, sent_id: str, *, as_sent: bool) -> None:
    if isinstance(reference, Rejected):
        assert isinstance(batch, Rejected), (batch, reference)
        assert (batch.field, batch.reason) == (reference.field, reference.reason)
        return
    assert not isinstance(batch, Rejected), (batch, reference)
    assert isinstance(reference[0], uuid.UUID)
    # Job and LLM rows: the text sent when it is the canonical spelling of the same UUID.
    canonical = as_sent and sent_id == str(reference[0])
    assert batch[0] == (sent_id if canonical else reference[0])
    assert batch[1:] == reference[1:]
    assert [type(value) for value in batch[1:]] == [type(value) for value in reference[1:]]


def _check(kind: str, events: Sequence[telemetry_pb2.TelemetryEvent]) -> list[Built]:
    builder = RowBuilder(TIERS, datetime.now(UTC))
    messages = [getattr(event, kind) for event in events]
    built = BUILDERS[kind](builder, messages)
    reference = _one_by_one(builder, kind, messages)
    assert len(built) == len(reference) == len(messages)
    for batch, ref, message in zip(built, reference, messages, strict=True):
        _same(batch, ref, message.event_id, as_sent=kind != "cost")
    return built


@settings(max_examples=300)
@given(st.lists(job_events(), min_size=1, max_size=12))
def test_job_rows_are_the_rows_built_one_by_one(events: list[telemetry_pb2.TelemetryEvent]) -> None:
    _check("job", events)


@settings(max_examples=300)
@given(st.lists(llm_events(), min_size=1, max_size=12))
def test_llm_rows_are_the_rows_built_one_by_one(events: list[telemetry_pb2.TelemetryEvent]) -> None:
    _check("llm", events)


@settings(max_examples=100)
@given(st.lists(cost_events(), min_size=1, max_size=6))
def test_cost_rows_are_the_rows_built_one_by_one(
    events: list[telemetry_pb2.TelemetryEvent],
) -> None:
    _check("cost", events)


_JOB_COUNTS = ("duration_ms", "queue_wait_ms", "cpu_ms", "mem_mb_peak", "rows_read", "rows_written")
_LLM_COUNTS = ("input_tokens", "output_tokens", "duration_ms")


def _largest_job() -> telemetry_pb2.TelemetryEvent:
    return job(
        **{name: MAXIMUM[name] for name in (*_JOB_COUNTS, "attempt")},
        job_name="j" * MAX_LENGTH["job_name"],
        user_id="u" * MAX_LENGTH["user_id"],
        error_code="e" * MAX_LENGTH["error_code"],
        queued_at=ts(NOW - timedelta(seconds=2)),
        started_at=ts(NOW - timedelta(seconds=1)),
        finished_at=ts(NOW),
        created_at=ts(NOW + timedelta(hours=23)),  # within the day of clock skew tolerated
    )


def _largest_llm() -> telemetry_pb2.TelemetryEvent:
    most = MAXIMUM["input_tokens"]
    return llm(
        **{name: MAXIMUM[name] for name in _LLM_COUNTS},
        cached_input_tokens=most,
        reasoning_tokens=most,
        output_image_tokens=most,
        insight_key="k" * MAX_LENGTH["insight_key"],
        llm_model="m" * MAX_LENGTH["llm_model"],
    )


@pytest.mark.parametrize("kind", ["job", "llm"])
def test_the_largest_values_of_each_range_are_kept_and_one_more_is_rejected(kind: str) -> None:
    largest = _largest_job() if kind == "job" else _largest_llm()
    one_more = []
    for name in _JOB_COUNTS if kind == "job" else _LLM_COUNTS:
        event = telemetry_pb2.TelemetryEvent()
        event.CopyFrom(largest)
        getattr(event, kind).event_id = str(uuid.uuid4())
        setattr(getattr(event, kind), name, MAXIMUM[name] + 1)
        one_more.append((name, event))
    built = _check(kind, [largest, *(event for _, event in one_more)])
    row = built[0]
    assert not isinstance(row, Rejected)
    assert MAXIMUM["cpu_ms" if kind == "job" else "input_tokens"] in row
    for (name, _), rejected in zip(one_more, built[1:], strict=True):
        assert isinstance(rejected, Rejected)
        # the first check to fail names its field (a whole below its part fails as the part)
        assert rejected.field in {name, "cached_input_tokens", "reasoning_tokens"}


def test_a_rejected_event_in_the_middle_leaves_the_others_in_order() -> None:
    events = [
        job(cpu_ms=1),
        job(cpu_ms=-1),
        job(cpu_ms=3, event_id=str(uuid.uuid4()).upper()),
        job(user_id=""),
        job(cpu_ms=5),
    ]
    built = _check("job", events)
    kept = [row for row in built if not isinstance(row, Rejected)]
    assert [row[11] for row in kept] == [1, 3, 5]
    assert [(r.field, r.reason) for r in built if isinstance(r, Rejected)] == [
        ("cpu_ms", "must not be negative, got -1"),
        ("user_id", "is required"),
    ]
    # the upper-case spelling was doubted, and RowBuilder made a UUID of it
    assert kept[1][0] == uuid.UUID(events[2].job.event_id)


def test_absent_fields_are_stored_as_null_or_their_defaults() -> None:
    bare = telemetry_pb2.TelemetryEvent(
        job=telemetry_pb2.JobEvent(
            event_id=str(uuid.uuid4()), job_name="j", user_id="u", tier="pro"
        )
    )
    (row,) = _check("job", [bare])
    assert not isinstance(row, Rejected)
    received: Row = row
    assert received[4] == "default"  # domain
    assert received[5:9] == (None, None, None, None)  # job_type and the three times
    assert received[15] == 1  # attempt
    assert received[17:20] == (None, None, None)  # error_code, episode_id, podcast_id
    assert isinstance(received[20], datetime)  # created_at: when the service received it
    assert received[21:] == (None, None)  # reservation_id, job_id
