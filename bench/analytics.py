"""Issue 17's analytics reads over 100,000 users x 30 days, beside their SQL alone.

Seeded as a month of a busy deployment leaves them: the breakdown rows of a few hundred
models, services and domains a day, the throttle's decisions by tier and action and by user
(half the users active a day, one in twenty also deferred, denied or downgraded), 200 alerts
a day, and a month of raw events (20,000 LLM calls, 20,000 jobs and 10,000 cost events a day
over every user, and one heavy user with 250 events a day) in their day partitions.

Each read is timed through the real ASGI app, beside its baseline measured in the same run:
the route's own SQL statements run straight on a pool (no HTTP, auth or JSON), so the ratio
is what the gateway adds to what Postgres must do anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bench.common import figure, percentile
from costguard.common.days import day_bounds
from costguard.common.event_ranges import MAXIMUM
from costguard.common.partitions import add_day_partitions
from costguard.gateway import queries
from costguard.gateway.dispatch import GIVE_UP_ATTEMPTS
from costguard.gateway.user_days import RANGE_DAYS

RANGE = 30
KEYS = 300  # models, services and domains each
HEAVY, TYPICAL = "user-1", "user-77777"
UTC = ZoneInfo("UTC")

_BREAKDOWN = """
INSERT INTO cost_breakdown_daily (date, dimension, key, cost_usd, tokens_in, tokens_out, calls,
    events)
SELECT $1::date, d.dimension, d.dimension || '-' || k,
       round((random() ^ 3 * 50)::numeric, 8), (random() * 1e6)::bigint,
       (random() * 1e5)::bigint, (random() * 1000)::bigint, (random() * 1000)::bigint
FROM unnest(ARRAY['model', 'service', 'domain']) AS d (dimension), generate_series(1, $2) AS k
"""
_DECISIONS = """
INSERT INTO throttle_decisions_daily (date, tier, action, decisions)
SELECT $1::date, t, a, (random() * 100000)::bigint
FROM unnest(ARRAY['free', 'pro', 'enterprise', 'trial']) AS t,
     unnest(ARRAY['ALLOW', 'DOWNGRADE', 'DEFER', 'DENY']) AS a
"""
# Half the users a day allowed; one in twenty of them deferred, denied or downgraded too.
_USER_DECISIONS = """
INSERT INTO throttle_user_decisions_daily
    (user_id, date, tier, action, decisions, last_reason, last_at)
SELECT 'user-' || u, $2::date, (ARRAY['free','pro','enterprise'])[1 + u % 3], a.action,
       1 + (random() * 50)::int, 'within budget', $2::date + interval '12 hours'
FROM generate_series(1, $1) AS u
CROSS JOIN LATERAL (
    SELECT 'ALLOW' AS action
    UNION ALL SELECT (ARRAY['DEFER', 'DENY', 'DOWNGRADE'])[1 + u % 3] WHERE u % 20 = 0
) a
WHERE (u + $3) % 2 = 0 OR u = 1
"""
_ALERTS = """
INSERT INTO budget_alerts (day, apply_scope, metric, threshold, kind, used, cap, created_at,
    delivered_at, delivery_attempts, last_error)
SELECT $1::date, 'user:user-' || (i * 487 % 100000), 'jobs', 0.8, 'crossed', 8, 10,
       $1::date + interval '1 minute' * i,
       CASE WHEN i % 10 <> 0 THEN $1::date + interval '1 minute' * i END,
       CASE WHEN i % 10 <> 0 THEN 1 WHEN i % 20 = 0 THEN $2 ELSE 3 END,
       CASE WHEN i % 10 = 0 THEN 'HTTP 503' END
FROM generate_series(1, 200) AS i
"""
# A day's raw events: $1 calls (and as many jobs, half as many cost events) over $2 users, and
# $4 of each for the heavy user; $3: the day's start.
_LLM = """
INSERT INTO telemetry_llm_events (event_id, user_id, tier, domain, provider, llm_model,
    context_type, input_tokens, output_tokens, cost_usd, price_sheet_id, created_at)
SELECT gen_random_uuid(),
       CASE WHEN i <= $4 THEN 'user-1' ELSE 'user-' || (1 + i * 7919::bigint % $2) END,
       'pro', 'domain-' || i % 300, 'provider-' || i % 5, 'model-' || i % 60, 'general',
       i % 4000, i % 400, round((random() / 100)::numeric, 10), 1,
       $3::timestamptz + interval '86399 seconds' * random()
FROM generate_series(1, $1::int + $4::int) AS i
"""
_JOBS = """
INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain, started_at,
    created_at, cpu_ms, duration_ms, queue_wait_ms, success, cost_usd, price_sheet_id)
SELECT gen_random_uuid(), 'job-' || i % 40,
       CASE WHEN i <= $4 THEN 'user-1' ELSE 'user-' || (1 + i * 104729::bigint % $2) END, 'pro',
       'domain-' || i % 300, t, t, i % 5000, i % 9000, i % 700, i % 50 <> 0,
       round((random() / 1000)::numeric, 10), 1
FROM generate_series(1, $1::int + $4::int) AS i,
     LATERAL (SELECT $3::timestamptz + interval '86399 seconds' * random() AS t) s
"""
_COSTS = """
INSERT INTO cost_events (event_id, event_type, service, quantity, unit, user_id, tier, cost_usd,
    cost_category, price_sheet_id, created_at)
SELECT gen_random_uuid(), 'api_call', 'service-' || i % 300, i % 10, 'requests',
       CASE WHEN i <= $4::int / 2 THEN 'user-1' ELSE 'user-' || (1 + i * 15485863::bigint % $2) END,
       'pro', round((random() / 1000)::numeric, 10), 'aws', 1,
       $3::timestamptz + interval '86399 seconds' * random()
FROM generate_series(1, $1::int / 2 + $4::int / 2) AS i
"""
CALLS_PER_DAY, HEAVY_PER_DAY = 20_000, 100
# The summary reads the month's raw events (cache hits, jobs by domain): seconds a call, so
# fewer of them.
SLOW, SLOW_CALLS = frozenset({"summary?from..to"}), 20


async def fill(pool: asyncpg.Pool, today: date, users: int) -> None:
    """The analytics tables and a month of raw events (cost_user_daily is filled already)."""
    await pool.execute("SELECT setseed(0.17)")
    days = [today - timedelta(days=back) for back in range(RANGE_DAYS)]
    await add_day_partitions(pool, days[:RANGE], tz=UTC)
    for day in days:
        await pool.execute(_BREAKDOWN, day, KEYS)
        await pool.execute(_DECISIONS, day)
    for back, day in enumerate(days[:RANGE]):
        await pool.execute(_USER_DECISIONS, users, day, back)
        await pool.execute(_ALERTS, day, GIVE_UP_ATTEMPTS)
        start, _ = day_bounds(day, UTC)
        for statement in (_LLM, _JOBS, _COSTS):
            await pool.execute(statement, CALLS_PER_DAY, users, start, HEAVY_PER_DAY)
    await pool.execute("VACUUM ANALYZE")


def _baselines(today: date) -> dict[str, list[tuple[str, tuple[Any, ...]]]]:
    """Each route's SQL statements with their arguments, as the route runs them."""
    first, last = today - timedelta(days=RANGE - 1), today
    before = (first - timedelta(days=RANGE), first - timedelta(days=1))
    ago = today - timedelta(days=1)
    fixed = (ago - timedelta(days=RANGE - 1), ago)
    begin, end = day_bounds(first, UTC)[0], day_bounds(last, UTC)[1]
    out: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    for by in ("model", "service", "domain", "tier"):
        for name, (lo, hi) in ((f"days={RANGE}", (first, last)), ("from..to", fixed)):
            prev = (lo - timedelta(days=RANGE), lo - timedelta(days=1))
            steps: list[tuple[str, tuple[Any, ...]]] = [
                (queries.SERIES, (lo, hi)),
                (queries.SERIES, prev),
            ]
            if by != "tier":
                steps += [(queries.BREAKDOWN, (by, lo, hi)), (queries.BREAKDOWN, (by, *prev))]
            out[f"breakdown?by={by}&{name}"] = steps
    fixed_begin, fixed_end = day_bounds(fixed[0], UTC)[0], day_bounds(fixed[1], UTC)[1]
    out["summary?from..to"] = [
        (queries.SERIES, fixed),
        (queries.SERIES, (fixed[0] - timedelta(days=RANGE), fixed[0] - timedelta(days=1))),
        (queries.CACHE_HITS, (fixed_begin, fixed_end, "UTC")),
        (queries.JOBS_BY_DOMAIN, (fixed_begin, fixed_end)),
        (queries.MONTH_TO_DATE, (today.replace(day=1), today)),
        (queries.FULL_DAYS, (today - timedelta(days=7), today - timedelta(days=1))),
        (queries.BUDGETS, ()),
    ]
    for label, user in (("heavy", HEAVY), ("typical", TYPICAL)):
        out[f"users/{label}?days={RANGE}"] = [
            (queries.USER_TIER, (user, last)),  # both users have days: no USER_TIER_SEEN
            (queries.USER_DAYS, (user, first, last)),
            (queries.USER_DAYS, (user, *before)),
            (queries.USER_MODELS, (user, begin, end, MAXIMUM["input_tokens"],
                                   MAXIMUM["output_tokens"])),
            (queries.USER_SERVICES, (user, begin, end)),
            (queries.USER_EVENTS, (user, begin, end, 50)),
            (queries.USER_DECISIONS, (user, first, last)),
            (queries.BUDGETS, ()),
        ]  # fmt: skip
    out[f"decisions?days={RANGE}"] = [(queries.DECISIONS, (first, last, None))]
    out[f"alerts?days={RANGE}"] = [
        (queries.ALERT_COUNTS, (first, last, GIVE_UP_ATTEMPTS)),
        (queries.ALERTS, (first, last, GIVE_UP_ATTEMPTS, None, 200)),
    ]
    return out


def paths(today: date) -> dict[str, str]:
    """Each measured read's path (named as its baseline is)."""
    ago = today - timedelta(days=1)
    fixed = f"from={ago - timedelta(days=RANGE - 1)}&to={ago}"
    out = {}
    for by in ("model", "service", "domain", "tier"):
        out[f"breakdown?by={by}&days={RANGE}"] = f"/api/admin/cost/breakdown?by={by}&days={RANGE}"
        out[f"breakdown?by={by}&from..to"] = f"/api/admin/cost/breakdown?by={by}&{fixed}"
    out["summary?from..to"] = f"/api/admin/cost/summary?{fixed}"
    out[f"users/heavy?days={RANGE}"] = f"/api/admin/cost/users/{HEAVY}?days={RANGE}"
    out[f"users/typical?days={RANGE}"] = f"/api/admin/cost/users/{TYPICAL}?days={RANGE}"
    out[f"decisions?days={RANGE}"] = f"/api/admin/cost/decisions?days={RANGE}"
    out[f"alerts?days={RANGE}"] = f"/api/admin/cost/alerts?days={RANGE}"
    return out


def _figure_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name.replace("from..to", "range"))
    return "_".join(filter(None, cleaned.split("_")))


async def measure(
    get: Callable[[str], Awaitable[None]],
    timed: Callable[[Callable[[], Awaitable[object]], int], Awaitable[list[float]]],
    pool: asyncpg.Pool,
    today: date,
    calls: int,
) -> list[tuple[str, str]]:
    """Each read's p50 and p99 through the app, its SQL's alone, and their ratio."""
    rows = []
    baselines = _baselines(today)
    for name, path in paths(today).items():

        async def read(path: str = path) -> None:
            await get(path)

        async def sql(steps: list[tuple[str, tuple[Any, ...]]] = baselines[name]) -> None:
            for statement, args in steps:
                await pool.fetch(statement, *args)

        await read()  # the statements prepared, as a running gateway has them
        count = SLOW_CALLS if name in SLOW else calls
        samples = await timed(read, count)
        alone = await timed(sql, count)
        p50, p99, base50, base99 = (
            percentile(samples, 50),
            percentile(samples, 99),
            percentile(alone, 50),
            percentile(alone, 99),
        )
        rows.append(
            (
                name,
                f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms   SQL alone p50 {base50:7.2f} "
                f"p99 {base99:7.2f} ms   ratio p99 {p99 / base99:5.2f}",
            )
        )
        figure(f"{_figure_name(name)}_p99_ms", p99, "ms", goal="<= 50")
        figure(f"{_figure_name(name)}_vs_sql_p99", p99, "ms", baseline=base99)
    return rows
