"""What the rollup service exports on ``/metrics`` (see ``costguard.common.metrics``).

Lag: ``time() - costguard_rollup_last_success_timestamp_seconds{trigger="nightly"}`` is how
old the last nightly rollup is; ``costguard_rollup_dirty_dates`` how many dates wait for a
re-roll (it should fall back to 0 or 1 every ``ROLLUP_DIRTY_INTERVAL_SECONDS``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DATE_SECONDS = Histogram(
    "costguard_rollup_date_seconds",
    "Time to roll up one date",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
RUNS = Counter(
    "costguard_rollup_runs",
    "Recorded rollup runs, by trigger (nightly, dirty, rpc, cli, entity) and status "
    "(succeeded, failed, refused)",
    ["trigger", "status"],
)
LAST_SUCCESS = Gauge(
    "costguard_rollup_last_success_timestamp_seconds",
    "Unix time at which this process last finished a successful run, per trigger",
    ["trigger"],
)
DIRTY_DATES = Gauge(
    "costguard_rollup_dirty_dates",
    "Dates marked dirty by late or new events and not yet re-rolled, at the last scheduler tick",
)
RETENTION_DELETED = Counter(
    "costguard_retention_deleted_rows",
    "Raw events deleted by retention, by table",
    ["table"],
)
