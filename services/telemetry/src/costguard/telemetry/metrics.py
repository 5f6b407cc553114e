"""What the telemetry service exports on ``/metrics`` (see ``costguard.common.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "costguard_telemetry_events",
    "Events received, by kind (job, llm, cost; none when the event has no kind) and result "
    "(accepted, duplicate, rejected)",
    ["kind", "result"],
)
INGEST_SECONDS = Histogram(
    "costguard_telemetry_ingest_seconds",
    "Time to validate, store and count one batch of events",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
OTLP_SPANS = Counter(
    "costguard_otlp_spans",
    "OTLP spans received, by outcome (stored, duplicate, ignored: not a GenAI span, "
    "rejected: a GenAI span with a bad field)",
    ["outcome"],
)
OTLP_REPORTED_COSTS_IGNORED = Counter(
    "costguard_otlp_reported_costs_ignored",
    "GenAI spans stored without the cost they reported (gen_ai.usage.cost): negative, "
    "not finite, not a number, or past the bounds a call's cost can have",
)
