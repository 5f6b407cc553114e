"""What the throttle exports on ``/metrics`` (see ``costguard.common.metrics``)."""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter(
    "costguard_throttle_decisions",
    "Check decisions, by action (ALLOW, DOWNGRADE, DEFER, DENY) and tier",
    ["action", "tier"],
)


@cache
def _decisions(action: str, tier: str) -> Counter:
    return DECISIONS.labels(action, tier)  # a lookup under a lock: once per label pair


def decided(action: str, tier: str) -> None:
    """Count one decision (tiers and actions are few: the children are kept)."""
    _decisions(action, tier).inc()


CHECK_SECONDS = Histogram(
    "costguard_throttle_check_seconds",
    "Time to decide one Check, counters and reservation included",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
QUEUE_DEPTH = Gauge(
    "costguard_throttle_queue_depth",
    "Deferred jobs waiting (ready or delayed, not leased) per tier, as this replica last saw "
    "after a Defer, Lease or Ack; replicas share one queue, so take the max",
    ["tier"],
)
QUEUE_LEASED = Gauge(
    "costguard_throttle_queue_leased",
    "Deferred jobs currently leased to workers, as this replica last saw",
)
RESERVE_BATCH = Histogram(
    "costguard_throttle_reserve_batch_size",
    "Checks whose reservations went to Redis in one script call: _count is the round trips, "
    "_sum the checks they carried",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
