"""The gateway's reads: aggregates from Postgres, live use from Redis. No business rules."""

from __future__ import annotations

# The seed's daily columns are NULL-able (a row its own code wrote may leave them empty):
# every read here treats NULL as 0 or {}.
SERIES = """
SELECT date, coalesce(jobs, 0) AS jobs, coalesce(ai_calls, 0) AS ai_calls,
       coalesce(cpu_ms, 0) AS cpu_ms, coalesce(tokens_in, 0) AS tokens_in,
       coalesce(tokens_out, 0) AS tokens_out, coalesce(cost_usd, 0) AS cost_usd,
       coalesce(tier_breakdown_json, '{}') AS tier_breakdown_json, unpriced_json,
       estimated_cost_usd, estimated_events
FROM cost_global_daily WHERE date BETWEEN $1 AND $2 ORDER BY date
"""

CACHE_HITS = """
SELECT (created_at AT TIME ZONE $3)::date AS date, count(*) AS calls,
       count(*) FILTER (WHERE cache_hit) AS hits
FROM telemetry_llm_events WHERE created_at >= $1 AND created_at < $2 GROUP BY 1
"""

JOBS_BY_DOMAIN = """
SELECT domain, count(*) AS jobs, avg(queue_wait_ms)::float8 AS avg_queue_wait_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY queue_wait_ms)::float8 AS p95_queue_wait_ms
FROM telemetry_job_events
WHERE coalesce(started_at, created_at) >= $1 AND coalesce(started_at, created_at) < $2
GROUP BY domain ORDER BY jobs DESC LIMIT 50
"""

# Sum first and keep the top N, then look up only their tiers (their latest day's tier).
TOP_USERS = """
WITH top AS (
    SELECT user_id, coalesce(sum(cost_usd), 0) AS cost_usd,
           coalesce(sum(jobs), 0)::bigint AS jobs, coalesce(sum(ai_calls), 0)::bigint AS ai_calls,
           coalesce(sum(tokens_in), 0)::bigint AS tokens_in,
           coalesce(sum(tokens_out), 0)::bigint AS tokens_out, max(date) AS last_date
    FROM cost_user_daily WHERE date BETWEEN $1 AND $2
    GROUP BY user_id ORDER BY coalesce(sum(cost_usd), 0) DESC, user_id LIMIT $3
)
SELECT top.*, d.tier FROM top
JOIN cost_user_daily d ON d.user_id = top.user_id AND d.date = top.last_date
ORDER BY top.cost_usd DESC, top.user_id
"""

# TOP_USERS among the users $4 only (``user_days``: those who can be in its top $3).
_RANGE = "FROM cost_user_daily WHERE date BETWEEN $1 AND $2\n"
TOP_USERS_AMONG = TOP_USERS.replace(
    _RANGE, _RANGE.replace("$2", "$2 AND user_id = ANY($4::text[])"), 1
)
if TOP_USERS_AMONG == TOP_USERS:
    raise AssertionError("TOP_USERS no longer reads the range as TOP_USERS_AMONG expects")

MONTH_TO_DATE = (
    "SELECT coalesce(sum(cost_usd), 0) FROM cost_global_daily WHERE date BETWEEN $1 AND $2"
)

# The rolled-up days among the full days the forecast's pace comes from, and their cost.
FULL_DAYS = """
SELECT count(*) AS days, coalesce(sum(cost_usd), 0) AS cost_usd
FROM cost_global_daily WHERE date BETWEEN $1 AND $2
"""

# The seed's four caps store "no cap" as the largest bigint; the view cost_budget_caps and
# costguard_cap() read it as NULL.
BUDGETS = """
SELECT apply_scope, daily_cpu_ms_cap, daily_jobs_cap, llm_input_tokens_cap,
       llm_output_tokens_cap, daily_cost_usd_cap, alert_thresholds, enabled, updated_by,
       updated_at
FROM cost_budget_caps ORDER BY apply_scope
"""

# $2..$5: the four caps, NULL for no cap.
UPSERT_BUDGET = """
INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap, llm_input_tokens_cap,
    llm_output_tokens_cap, daily_cost_usd_cap, alert_thresholds, enabled, updated_by)
VALUES ($1, coalesce($2, 9223372036854775807), coalesce($3, 9223372036854775807),
        coalesce($4, 9223372036854775807), coalesce($5, 9223372036854775807), $6, $7, $8, $9)
ON CONFLICT (apply_scope) DO UPDATE SET
    daily_cpu_ms_cap = EXCLUDED.daily_cpu_ms_cap, daily_jobs_cap = EXCLUDED.daily_jobs_cap,
    llm_input_tokens_cap = EXCLUDED.llm_input_tokens_cap,
    llm_output_tokens_cap = EXCLUDED.llm_output_tokens_cap,
    daily_cost_usd_cap = EXCLUDED.daily_cost_usd_cap,
    alert_thresholds = EXCLUDED.alert_thresholds,
    enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING apply_scope, costguard_cap(daily_cpu_ms_cap) AS daily_cpu_ms_cap,
    costguard_cap(daily_jobs_cap) AS daily_jobs_cap,
    costguard_cap(llm_input_tokens_cap) AS llm_input_tokens_cap,
    costguard_cap(llm_output_tokens_cap) AS llm_output_tokens_cap,
    daily_cost_usd_cap, alert_thresholds, enabled, updated_by, updated_at
"""

BUDGET_OF_SCOPE = "SELECT * FROM cost_budget_caps WHERE apply_scope = $1 AND enabled"

ENTITY = "SELECT * FROM entity_costs WHERE entity_type = $1 AND entity_id = $2"

# An entity's cost_by_category holds exact decimal strings ("ai", "aws", "compute",
# "unpriced"): cast and summed as numeric, exactly; the gateway rounds each figure it shows.
# The "unpriced" key is there when the entity has cloud events without a price (they cost 0).
PODCAST_EPISODES = """
SELECT entity_id AS episode_id, total_cost_usd,
       coalesce((cost_by_category ->> 'ai')::numeric, 0) AS ai_cost_usd,
       coalesce((cost_by_category ->> 'aws')::numeric, 0) AS aws_cost_usd,
       coalesce((cost_by_category ->> 'compute')::numeric, 0) AS compute_cost_usd,
       coalesce((cost_by_category ->> 'unpriced')::numeric, 0) AS unpriced_cost_usd,
       cost_by_category ? 'unpriced' AS has_unpriced_events, event_count, calculated_at
FROM entity_costs WHERE entity_type = 'episode' AND podcast_id = $1
ORDER BY total_cost_usd DESC, entity_id LIMIT $2
"""

PODCAST_STATS = """
SELECT count(*) AS episodes, coalesce(sum(total_cost_usd), 0) AS total,
       coalesce(max(total_cost_usd), 0) AS max,
       coalesce(sum((cost_by_category ->> 'ai')::numeric), 0) AS ai,
       coalesce(sum((cost_by_category ->> 'aws')::numeric), 0) AS aws,
       coalesce(sum((cost_by_category ->> 'compute')::numeric), 0) AS compute,
       coalesce(sum((cost_by_category ->> 'unpriced')::numeric), 0) AS unpriced,
       count(*) FILTER (WHERE cost_by_category ? 'unpriced') AS unpriced_episodes,
       coalesce(sum(event_count), 0)::bigint AS events
FROM entity_costs WHERE entity_type = 'episode' AND podcast_id = $1
"""

DAILY = """
SELECT date, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd, cost_by_service_json,
       tier_breakdown_json
FROM cost_global_daily WHERE date BETWEEN $1 AND $2 ORDER BY date
"""

MONTHLY = "SELECT * FROM cost_monthly_summary WHERE year = $1 AND month = $2"

MONTHS_OF_YEAR = "SELECT * FROM cost_monthly_summary WHERE year = $1 ORDER BY month"

# A range's cost_breakdown_daily rows of one dimension, summed by key (exact numeric sums).
BREAKDOWN = """
SELECT key, sum(cost_usd) AS cost_usd, sum(tokens_in)::bigint AS tokens_in,
       sum(tokens_out)::bigint AS tokens_out, sum(calls)::bigint AS calls
FROM cost_breakdown_daily WHERE dimension = $1 AND date BETWEEN $2 AND $3 GROUP BY key
"""

# A range's decisions by date, tier and action; $3: one tier, or NULL for all.
DECISIONS = """
SELECT date, tier, action, sum(decisions)::bigint AS decisions FROM throttle_decisions_daily
WHERE date BETWEEN $1 AND $2 AND ($3::text IS NULL OR tier = $3)
GROUP BY date, tier, action ORDER BY date, tier, action
"""

# One user's days of cost_user_daily in a range (the primary key's user_id, date).
USER_DAYS = """
SELECT date, coalesce(jobs, 0) AS jobs, coalesce(ai_calls, 0) AS ai_calls,
       coalesce(tokens_in, 0) AS tokens_in, coalesce(tokens_out, 0) AS tokens_out,
       coalesce(cost_usd, 0) AS cost_usd
FROM cost_user_daily WHERE user_id = $1 AND date BETWEEN $2 AND $3 ORDER BY date
"""

# A user's tier: their latest day's up to $2, else their latest day's (the primary key).
USER_TIER = """
SELECT tier FROM (
    (SELECT tier, 0 AS source, date FROM cost_user_daily
     WHERE user_id = $1 AND date <= $2 ORDER BY date DESC LIMIT 1)
    UNION ALL
    (SELECT tier, 1, date FROM cost_user_daily WHERE user_id = $1 ORDER BY date DESC LIMIT 1)
) days ORDER BY source LIMIT 1
"""

# The tier of a user with no day rolled up yet: their latest throttle decision's, or latest
# event's between the instants $3 and $4 (the range: its day partitions alone, where one
# unbounded would read every partition of retention); no row: a user never seen. $2: the
# tier of cost events that name none (the rollup's).
USER_TIER_SEEN = """
SELECT tier FROM (
    (SELECT tier, created_at AS at FROM telemetry_llm_events
     WHERE user_id = $1 AND created_at >= $3 AND created_at < $4
     ORDER BY created_at DESC LIMIT 1)
    UNION ALL
    (SELECT tier, coalesce(started_at, created_at) FROM telemetry_job_events
     WHERE user_id = $1 AND coalesce(started_at, created_at) >= $3
     AND coalesce(started_at, created_at) < $4
     ORDER BY coalesce(started_at, created_at) DESC LIMIT 1)
    UNION ALL
    (SELECT coalesce(tier, $2), created_at FROM cost_events
     WHERE user_id = $1 AND created_at >= $3 AND created_at < $4
     ORDER BY created_at DESC LIMIT 1)
    UNION ALL
    (SELECT tier, last_at FROM throttle_user_decisions_daily
     WHERE user_id = $1 ORDER BY date DESC, last_at DESC LIMIT 1)
) seen ORDER BY at DESC LIMIT 1
"""

# A user's LLM calls between the instants $2 and $3 by 'provider/model': each event's stored
# price (the one the rollup adds up) and its tokens clamped as the rollup clamps them ($4,
# $5: the most input and output tokens of one event).
USER_MODELS = """
SELECT provider || '/' || llm_model AS key, coalesce(sum(cost_usd), 0) AS cost_usd,
       coalesce(sum(least(greatest(coalesce(input_tokens, 0), 0), $4)), 0)::bigint AS tokens_in,
       coalesce(sum(least(greatest(coalesce(output_tokens, 0), 0), $5)), 0)::bigint
           AS tokens_out,
       count(*) AS calls
FROM telemetry_llm_events WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
GROUP BY 1 ORDER BY 2 DESC, 1
"""

# A user's cost events between the instants $2 and $3 by service, at their stored prices.
USER_SERVICES = """
SELECT service AS key, coalesce(sum(cost_usd), 0) AS cost_usd, count(*) AS events
FROM cost_events WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
GROUP BY 1 ORDER BY 2 DESC, 1
"""

# A user's newest $4 events of the three kinds between the instants $2 and $3 (a job counts
# at its start, else its creation: the instant its day is counted on; a tie in time is
# broken by the event id). a, b: a job's CPU and run time in ms, a call's input and output
# tokens, a cost event's quantity (of unit). price_note: why a price is $0, missing,
# estimated or a fallback (null when it is the price library's own for what was reported).
USER_EVENTS = """
SELECT * FROM (
    (SELECT 'job' AS kind, event_id, coalesce(started_at, created_at) AS at,
            coalesce(job_name, job_type, 'job') AS name, cost_usd,
            coalesce(cpu_ms, 0)::numeric AS a, coalesce(duration_ms, 0)::numeric AS b,
            ''::text AS unit, coalesce(success, true) AS success,
            CASE WHEN cost_usd IS NULL THEN 'not priced yet' END AS price_note
     FROM telemetry_job_events
     WHERE user_id = $1 AND coalesce(started_at, created_at) >= $2
     AND coalesce(started_at, created_at) < $3
     ORDER BY coalesce(started_at, created_at) DESC LIMIT $4)
    UNION ALL
    (SELECT 'llm', event_id, created_at, provider || '/' || llm_model, cost_usd,
            coalesce(input_tokens, 0), coalesce(output_tokens, 0), '', coalesce(success, true),
            CASE WHEN cost_usd IS NULL THEN 'not priced yet'
                 WHEN cache_hit THEN 'cache hit: not billed'
                 WHEN NOT usage_reported THEN 'usage not reported: tokens estimated'
                 ELSE nullif(unpriced_reason, '') END
     FROM telemetry_llm_events WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
     ORDER BY created_at DESC LIMIT $4)
    UNION ALL
    (SELECT 'cost', event_id, created_at, service || '/' || event_type, cost_usd, quantity, 0,
            unit, true,
            CASE WHEN cost_usd IS NULL THEN 'not priced yet' ELSE nullif(unpriced_reason, '') END
     FROM cost_events WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
     ORDER BY created_at DESC LIMIT $4)
) e ORDER BY at DESC, event_id DESC LIMIT $4
"""

# A user's throttle decisions in a range, newest first (the primary key's user_id, date).
USER_DECISIONS = """
SELECT date, tier, action, decisions, coalesce(last_reason, '') AS last_reason, last_at
FROM throttle_user_decisions_daily WHERE user_id = $1 AND date BETWEEN $2 AND $3
ORDER BY date DESC, last_at DESC, tier, action
"""

# budget_alerts of a range: $3 the attempts after which delivery is given up (failed).
_ALERT_STATUS = """CASE WHEN delivered_at IS NOT NULL THEN 'sent'
            WHEN delivery_attempts >= $3 THEN 'failed' ELSE 'pending' END"""
ALERT_COUNTS = """
SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE kind = 'resolved') AS resolved
FROM (SELECT kind, ALERT_STATUS AS status FROM budget_alerts
      WHERE day BETWEEN $1 AND $2) a
""".replace("ALERT_STATUS", _ALERT_STATUS)
# $4: one status, or NULL for all; $5: the most rows.
ALERTS = """
SELECT * FROM (
    SELECT id, day, apply_scope, metric, threshold, kind, used, cap, created_at, delivered_at,
           delivery_attempts, last_error, ALERT_STATUS AS status
    FROM budget_alerts WHERE day BETWEEN $1 AND $2
) a WHERE $4::text IS NULL OR status = $4
ORDER BY created_at DESC, id DESC LIMIT $5
""".replace("ALERT_STATUS", _ALERT_STATUS)
