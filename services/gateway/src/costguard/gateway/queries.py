"""The gateway's reads: aggregates from Postgres, live use from Redis. No business rules."""

from __future__ import annotations

SERIES = """
SELECT date, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd, tier_breakdown_json,
       unpriced_json
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
    SELECT user_id, sum(cost_usd) AS cost_usd, sum(jobs)::bigint AS jobs,
           sum(ai_calls)::bigint AS ai_calls, sum(tokens_in)::bigint AS tokens_in,
           sum(tokens_out)::bigint AS tokens_out, max(date) AS last_date
    FROM cost_user_daily WHERE date BETWEEN $1 AND $2
    GROUP BY user_id ORDER BY sum(cost_usd) DESC, user_id LIMIT $3
)
SELECT top.*, d.tier FROM top
JOIN cost_user_daily d ON d.user_id = top.user_id AND d.date = top.last_date
ORDER BY top.cost_usd DESC, top.user_id
"""

MONTH_TO_DATE = (
    "SELECT coalesce(sum(cost_usd), 0) FROM cost_global_daily WHERE date BETWEEN $1 AND $2"
)

BUDGETS = """
SELECT apply_scope, cpu_ms_per_day, jobs_per_day, llm_input_tokens_per_day,
       llm_output_tokens_per_day, cost_usd_per_day, alert_thresholds, enabled, updated_by,
       updated_at
FROM cost_budgets ORDER BY apply_scope
"""

UPSERT_BUDGET = """
INSERT INTO cost_budgets (apply_scope, cpu_ms_per_day, jobs_per_day, llm_input_tokens_per_day,
    llm_output_tokens_per_day, cost_usd_per_day, alert_thresholds, enabled, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (apply_scope) DO UPDATE SET
    cpu_ms_per_day = EXCLUDED.cpu_ms_per_day, jobs_per_day = EXCLUDED.jobs_per_day,
    llm_input_tokens_per_day = EXCLUDED.llm_input_tokens_per_day,
    llm_output_tokens_per_day = EXCLUDED.llm_output_tokens_per_day,
    cost_usd_per_day = EXCLUDED.cost_usd_per_day, alert_thresholds = EXCLUDED.alert_thresholds,
    enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING apply_scope, cpu_ms_per_day, jobs_per_day, llm_input_tokens_per_day,
    llm_output_tokens_per_day, cost_usd_per_day, alert_thresholds, enabled, updated_by, updated_at
"""

ENTITY = "SELECT * FROM entity_costs WHERE entity_type = $1 AND entity_id = $2"

# An entity's cost_by_category holds decimal strings ("ai", "aws", "compute", "unpriced"),
# each rounded to 8 places by the rollup: cast and summed as numeric, exactly. The
# "unpriced" key is there when the entity has cloud events without a price (they cost 0).
PODCAST_EPISODES = """
SELECT entity_id AS episode_id, total_cost_usd,
       round(coalesce((cost_by_category ->> 'ai')::numeric, 0), 8) AS ai_cost_usd,
       round(coalesce((cost_by_category ->> 'aws')::numeric, 0), 8) AS aws_cost_usd,
       round(coalesce((cost_by_category ->> 'compute')::numeric, 0), 8) AS compute_cost_usd,
       round(coalesce((cost_by_category ->> 'unpriced')::numeric, 0), 8) AS unpriced_cost_usd,
       cost_by_category ? 'unpriced' AS has_unpriced_events, event_count, calculated_at
FROM entity_costs WHERE entity_type = 'episode' AND podcast_id = $1
ORDER BY total_cost_usd DESC, entity_id LIMIT $2
"""

PODCAST_STATS = """
SELECT count(*) AS episodes, coalesce(sum(total_cost_usd), 0) AS total,
       coalesce(avg(total_cost_usd), 0) AS average, coalesce(max(total_cost_usd), 0) AS max,
       round(coalesce(sum((cost_by_category ->> 'ai')::numeric), 0), 8) AS ai,
       round(coalesce(sum((cost_by_category ->> 'aws')::numeric), 0), 8) AS aws,
       round(coalesce(sum((cost_by_category ->> 'compute')::numeric), 0), 8) AS compute,
       round(coalesce(sum((cost_by_category ->> 'unpriced')::numeric), 0), 8) AS unpriced,
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
