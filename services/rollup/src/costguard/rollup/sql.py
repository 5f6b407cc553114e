"""The rollup's SQL, in one place. All work happens in Postgres.

Events carry their price (telemetry prices each as it stores it); the few stored without
one are priced first (``PRICE_*``, with the day's sheet in temporary tables). The stored
costs are then grouped once into the day's groups (``costguard.rollup.groups_sql``); every
aggregate (users, global, entities, month) is derived from those groups, so the raw events
are scanned once.
"""

from __future__ import annotations

from dataclasses import dataclass

from costguard.common.pricing import (
    COST_EVENTS_SQL,
    LLM_CALL_COST_SQL,
    LLM_NO_TOKENS,
    LLM_UNKNOWN_MODEL,
)

# For the rollup's transaction: group in memory rather than spill sorts to disk, and skip
# JIT compilation (it cost about a second per statement and saved less).
SESSION_SETTINGS = "SET LOCAL work_mem = '256MB'; SET LOCAL jit = off"

# Rates of the sheet being used (``llm_rate_rows``, ``event_rate_rows`` and
# ``overlay_rate_rows`` of ``costguard.common.pricing``), loaded by COPY for the length of
# the transaction.
CREATE_RATE_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS rollup_llm_rates (
    model text NOT NULL, provider text NOT NULL, min_input_tokens bigint NOT NULL,
    max_input_tokens bigint, input_per_token numeric NOT NULL,
    cached_input_per_token numeric NOT NULL, output_per_token numeric NOT NULL,
    per_request numeric NOT NULL, priced boolean NOT NULL,
    output_image_per_token numeric NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS rollup_event_rates (
    event_type text NOT NULL, service text NOT NULL, unit text NOT NULL, kind text NOT NULL,
    per_unit numeric NOT NULL, per_gb_second numeric NOT NULL, category text NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS rollup_overlay_rates (
    kind text NOT NULL, model text NOT NULL, input_per_token numeric NOT NULL,
    output_per_token numeric NOT NULL, per_image numeric NOT NULL
) ON COMMIT DELETE ROWS;
"""

# Prices of the rows stored without one (rows written before ingest priced events, or by
# the seed's own code), or of every row of the day for a deliberate reprice (TO_PRICE, see
# ``Pricing``). $1, $2: the day's bounds; $3: the sheet's id, whose rates are in the
# temporary tables. The same
# rules as ingest's (``costguard.telemetry.prices``): the seed formula for jobs, the sheet's
# rate for LLM calls (unknown models at the seed constants, flagged), the cost-event table
# for cost events. $4, $5 (jobs): the sheet's seed CPU-ms and 1k-row prices.
_PRICE_JOBS = """
UPDATE telemetry_job_events
SET cost_usd = coalesce(cpu_ms, 0) * $4::numeric
               + (coalesce(rows_read, 0) + coalesce(rows_written, 0))::numeric / 1000 * $5::numeric,
    price_sheet_id = $3
WHERE coalesce(started_at, created_at) >= $1 AND coalesce(started_at, created_at) < $2
AND TO_PRICE
"""

_PRICE_LLM_TEMPLATE = """
UPDATE telemetry_llm_events t
SET cost_usd = p.cost, price_sheet_id = $3, unpriced_reason = p.reason
FROM (
    SELECT e.id, c.cost,
           CASE WHEN e.cache_hit THEN NULL WHEN NOT r.priced THEN 'UNKNOWN_MODEL'
                WHEN c.cost = 0 THEN 'NO_TOKENS' END AS reason
    FROM (SELECT id, llm_model, provider, coalesce(cache_hit, false) AS cache_hit,
                 coalesce(input_tokens, 0) AS input_tokens,
                 coalesce(cached_input_tokens, 0) AS cached_input_tokens,
                 coalesce(output_tokens, 0) AS output_tokens,
                 output_image_tokens
          FROM telemetry_llm_events
          WHERE created_at >= $1 AND created_at < $2 AND TO_PRICE) e
    JOIN rollup_llm_rates r
        ON r.model = e.llm_model AND r.provider = e.provider
        AND e.input_tokens
            BETWEEN r.min_input_tokens AND coalesce(r.max_input_tokens, e.input_tokens)
    CROSS JOIN LATERAL (SELECT LLM_COST AS cost) c
) p
WHERE t.id = p.id AND t.created_at >= $1 AND t.created_at < $2
"""
_PRICE_LLM = (
    _PRICE_LLM_TEMPLATE.replace("LLM_COST", LLM_CALL_COST_SQL.strip())
    .replace("UNKNOWN_MODEL", LLM_UNKNOWN_MODEL.replace("'", "''"))
    .replace("NO_TOKENS", LLM_NO_TOKENS.replace("'", "''"))
)

_DAY_FILTER = "WHERE e.created_at >= $1 AND e.created_at < $2"
if _DAY_FILTER not in COST_EVENTS_SQL:
    raise AssertionError("COST_EVENTS_SQL no longer filters the day as PRICE_COST_EVENTS needs")
_PRICE_COST_EVENTS_TEMPLATE = """
UPDATE cost_events c
SET cost_usd = p.cost, price_sheet_id = $3, cost_category = p.category,
    unpriced_reason = p.reason, unpriced_item = p.item
FROM (COST_EVENTS) p
WHERE c.event_id = p.event_id AND c.created_at >= $1 AND c.created_at < $2
"""
_PRICE_COST_EVENTS = _PRICE_COST_EVENTS_TEMPLATE.replace(
    "COST_EVENTS", COST_EVENTS_SQL.strip().replace(_DAY_FILTER, _DAY_FILTER + " AND EVENT_TO_PRICE")
)

# The (model, provider) of the day's rows to price.
_MODELS_TO_PRICE = """
SELECT DISTINCT llm_model AS model, provider FROM telemetry_llm_events
WHERE created_at >= $1 AND created_at < $2 AND TO_PRICE
UNION
SELECT DISTINCT metadata ->> 'model', 'google' FROM cost_events
WHERE created_at >= $1 AND created_at < $2 AND TO_PRICE
AND event_type = 'ai_api_call' AND service = 'gemini_text'
AND jsonb_typeof(metadata -> 'model') = 'string' AND metadata ->> 'model' <> ''
"""


@dataclass(frozen=True)
class Pricing:
    """The statements that price a day's rows: those stored without a price, or (a
    reprice) all of them. Each is its own statement, so the first can use the small
    partial indexes on rows without a price."""

    models: str
    jobs: str
    llm: str
    cost_events: str


def _pricing(to_price: str, event_to_price: str) -> Pricing:
    return Pricing(
        *(
            text.replace("EVENT_TO_PRICE", event_to_price).replace("TO_PRICE", to_price)
            for text in (_MODELS_TO_PRICE, _PRICE_JOBS, _PRICE_LLM, _PRICE_COST_EVENTS)
        )
    )


PRICE_PENDING = _pricing("cost_usd IS NULL", "e.cost_usd IS NULL")
PRICE_ALL = _pricing("true", "true")

# Every aggregate is derived from the day's groups (``costguard.rollup.groups_sql``). $1:
# the day; $2: the sheet it is priced with; $3 (and $4): the users (episodes, podcasts) to
# derive, or NULL for all of them (a refresh derives only those its new events touched).

# A user's day counts under the tier of their latest event (ties: the greater tier name):
# the live counters follow the same rule, so the users grouped by tier equal the breakdown.
UPSERT_USERS = """
INSERT INTO cost_user_daily AS d (user_id, date, tier, jobs, ai_calls, cpu_ms, tokens_in,
                                  tokens_out, cost_usd, price_sheet_id, updated_at)
SELECT user_id, $1::date, (array_agg(tier ORDER BY vote DESC, tier COLLATE "C" DESC))[1],
       sum(jobs), sum(ai_calls), sum(cpu_ms), sum(tokens_in), sum(tokens_out),
       sum(cost), $2, now()
FROM rollup_day_groups
WHERE date = $1 AND user_id IS NOT NULL AND ($3::text[] IS NULL OR user_id = ANY($3::text[]))
GROUP BY user_id
ON CONFLICT (user_id, date) DO UPDATE SET
    tier = EXCLUDED.tier, jobs = EXCLUDED.jobs, ai_calls = EXCLUDED.ai_calls,
    cpu_ms = EXCLUDED.cpu_ms, tokens_in = EXCLUDED.tokens_in, tokens_out = EXCLUDED.tokens_out,
    cost_usd = EXCLUDED.cost_usd, price_sheet_id = EXCLUDED.price_sheet_id, updated_at = now()
"""

DELETE_STALE_USERS = """
DELETE FROM cost_user_daily d WHERE d.date = $1
AND NOT EXISTS (SELECT 1 FROM rollup_day_groups g WHERE g.date = $1 AND g.user_id = d.user_id)
"""

# The tier breakdown: each tier's figures, summed over the ``users`` of the day in it.
TIER_FIGURES = """tiers AS (
    SELECT tier, jsonb_build_object(
        'jobs', sum(jobs), 'ai_calls', sum(ai_calls), 'cpu_ms', sum(cpu_ms),
        'tokens_in', sum(tokens_in), 'tokens_out', sum(tokens_out),
        'cost_usd', sum(cost)::text) AS figures
    FROM users GROUP BY tier
),"""

# The tier breakdown groups the users by their tier for the day, plus the unattributed
# events (cost events without a user) under their own tier name.
UPSERT_GLOBAL = """
WITH users AS (
    SELECT user_id, (array_agg(tier ORDER BY vote DESC, tier COLLATE "C" DESC))[1] AS tier,
           sum(events) AS events, sum(jobs) AS jobs, sum(ai_calls) AS ai_calls,
           sum(cpu_ms) AS cpu_ms, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
           sum(cost) AS cost, sum(estimated_events) AS estimated_events,
           sum(estimated_cost) AS estimated_cost
    FROM rollup_day_groups WHERE date = $1 AND user_id IS NOT NULL GROUP BY user_id
    UNION ALL
    SELECT NULL, tier, sum(events), sum(jobs), sum(ai_calls), sum(cpu_ms), sum(tokens_in),
           sum(tokens_out), sum(cost), sum(estimated_events), sum(estimated_cost)
    FROM rollup_day_groups WHERE date = $1 AND user_id IS NULL GROUP BY tier
),
TIER_FIGURES
services AS (
    SELECT service, sum(cost) AS cost FROM rollup_day_groups WHERE date = $1 GROUP BY service
),
unpriced AS (
    SELECT unpriced, sum(cost) AS cost, sum(events) AS events,
           string_agg(DISTINCT reason, '; ' ORDER BY reason) AS reason
    FROM rollup_day_groups WHERE date = $1 AND unpriced IS NOT NULL GROUP BY unpriced
)
INSERT INTO cost_global_daily AS g (date, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd,
    tier_breakdown_json, cost_by_service_json, unpriced_cost_usd, unpriced_json, events,
    estimated_cost_usd, estimated_events, price_sheet_id, updated_at)
SELECT $1::date, coalesce(sum(jobs), 0), coalesce(sum(ai_calls), 0), coalesce(sum(cpu_ms), 0),
       coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), coalesce(sum(cost), 0),
       coalesce((SELECT jsonb_object_agg(tier, figures) FROM tiers), '{}'::jsonb),
       coalesce((SELECT jsonb_object_agg(service, cost::text) FROM services), '{}'::jsonb),
       coalesce((SELECT sum(cost) FROM unpriced), 0),
       coalesce((SELECT jsonb_object_agg(unpriced, jsonb_build_object(
           'cost_usd', cost::text, 'events', events, 'reason', reason)) FROM unpriced),
           '{}'::jsonb),
       coalesce(sum(events), 0), coalesce(sum(estimated_cost), 0),
       coalesce(sum(estimated_events), 0), $2, now()
FROM users
ON CONFLICT (date) DO UPDATE SET
    jobs = EXCLUDED.jobs, ai_calls = EXCLUDED.ai_calls, cpu_ms = EXCLUDED.cpu_ms,
    tokens_in = EXCLUDED.tokens_in, tokens_out = EXCLUDED.tokens_out,
    cost_usd = EXCLUDED.cost_usd, tier_breakdown_json = EXCLUDED.tier_breakdown_json,
    cost_by_service_json = EXCLUDED.cost_by_service_json,
    unpriced_cost_usd = EXCLUDED.unpriced_cost_usd, unpriced_json = EXCLUDED.unpriced_json,
    events = EXCLUDED.events, estimated_cost_usd = EXCLUDED.estimated_cost_usd,
    estimated_events = EXCLUDED.estimated_events, price_sheet_id = EXCLUDED.price_sheet_id,
    updated_at = now()
RETURNING cost_usd, events, (SELECT count(user_id) FROM users) AS users
""".replace("TIER_FIGURES", TIER_FIGURES)

# Per entity (episode, podcast) and day: total, by service, by category, usage. Costs are
# exact sums (the breakdowns as decimal text): the entity totals and the month add these
# days up, and a day rounded here would make them drift. They are rounded once, where shown.
UPSERT_ENTITY_DAYS = """
WITH groups AS (
    SELECT 'episode' AS entity_type, episode_id AS entity_id, podcast_id, service, category,
           events, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, emails, storage_mb, cost
    FROM rollup_day_groups
    WHERE date = $1 AND episode_id IS NOT NULL
    AND ($3::text[] IS NULL OR episode_id = ANY($3::text[]))
    UNION ALL
    SELECT 'podcast', podcast_id, podcast_id, service, category,
           events, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, emails, storage_mb, cost
    FROM rollup_day_groups
    WHERE date = $1 AND podcast_id IS NOT NULL
    AND ($4::text[] IS NULL OR podcast_id = ANY($4::text[]))
),
by_service AS (
    SELECT entity_type, entity_id, jsonb_object_agg(service, c::text) AS m
    FROM (SELECT entity_type, entity_id, service, sum(cost) AS c
          FROM groups GROUP BY 1, 2, 3) s GROUP BY 1, 2
),
by_category AS (
    SELECT entity_type, entity_id, jsonb_object_agg(category, c::text) AS m
    FROM (SELECT entity_type, entity_id, category, sum(cost) AS c
          FROM groups GROUP BY 1, 2, 3) s GROUP BY 1, 2
),
totals AS (
    SELECT entity_type, entity_id, max(podcast_id) AS podcast_id, sum(events) AS events,
           sum(cost) AS cost,
           jsonb_build_object('jobs', sum(jobs), 'ai_calls', sum(ai_calls), 'cpu_ms', sum(cpu_ms),
                              'tokens_in', sum(tokens_in), 'tokens_out', sum(tokens_out),
                              'emails', sum(emails), 'storage_mb', round(sum(storage_mb), 6))
               AS usage
    FROM groups GROUP BY 1, 2
)
INSERT INTO entity_costs_daily AS d (entity_type, entity_id, date, podcast_id, cost_usd,
    cost_by_service, cost_by_category, usage_metrics, event_count, price_sheet_id)
SELECT t.entity_type, t.entity_id, $1::date, t.podcast_id, t.cost, s.m, c.m, t.usage, t.events, $2
FROM totals t
JOIN by_service s USING (entity_type, entity_id)
JOIN by_category c USING (entity_type, entity_id)
ON CONFLICT (entity_type, entity_id, date) DO UPDATE SET
    podcast_id = EXCLUDED.podcast_id, cost_usd = EXCLUDED.cost_usd,
    cost_by_service = EXCLUDED.cost_by_service, cost_by_category = EXCLUDED.cost_by_category,
    usage_metrics = EXCLUDED.usage_metrics, event_count = EXCLUDED.event_count,
    price_sheet_id = EXCLUDED.price_sheet_id
"""

# The new events' costs added to their entities' days ($1: the day, $2: its sheet), the
# breakdowns key by key (a refresh: ``costguard.rollup.groups_sql``).
UPSERT_ENTITY_DAYS_ADDED = (
    UPSERT_ENTITY_DAYS.replace(
        """    FROM rollup_day_groups
    WHERE date = $1 AND episode_id IS NOT NULL
    AND ($3::text[] IS NULL OR episode_id = ANY($3::text[]))""",
        "    FROM rollup_delta WHERE episode_id IS NOT NULL",
    )
    .replace(
        """    FROM rollup_day_groups
    WHERE date = $1 AND podcast_id IS NOT NULL
    AND ($4::text[] IS NULL OR podcast_id = ANY($4::text[]))""",
        "    FROM rollup_delta WHERE podcast_id IS NOT NULL",
    )
    .split("ON CONFLICT")[0]
    + """ON CONFLICT (entity_type, entity_id, date) DO UPDATE SET
    podcast_id = greatest(d.podcast_id, EXCLUDED.podcast_id),
    cost_usd = CASE WHEN d.cost_usd IS NULL AND EXCLUDED.cost_usd IS NULL THEN NULL
                    ELSE coalesce(d.cost_usd, 0) + coalesce(EXCLUDED.cost_usd, 0) END,
    cost_by_service = costguard_jsonb_sum(d.cost_by_service, EXCLUDED.cost_by_service),
    cost_by_category = costguard_jsonb_sum(d.cost_by_category, EXCLUDED.cost_by_category),
    usage_metrics = costguard_jsonb_sum(d.usage_metrics, EXCLUDED.usage_metrics),
    event_count = d.event_count + EXCLUDED.event_count, price_sheet_id = EXCLUDED.price_sheet_id
"""
)
if "rollup_day_groups" in UPSERT_ENTITY_DAYS_ADDED:
    raise AssertionError(
        "UPSERT_ENTITY_DAYS changed: UPSERT_ENTITY_DAYS_ADDED no longer reads the delta"
    )

# Equality on both columns, so Postgres can hash-anti-join (an OR here took 30 s).
DELETE_STALE_ENTITY_DAYS = """
WITH touched AS (
    SELECT 'episode' AS entity_type, episode_id AS entity_id
    FROM rollup_day_groups WHERE date = $1 AND episode_id IS NOT NULL
    UNION
    SELECT 'podcast', podcast_id FROM rollup_day_groups WHERE date = $1 AND podcast_id IS NOT NULL
)
DELETE FROM entity_costs_daily d WHERE d.date = $1 AND NOT EXISTS (
    SELECT 1 FROM touched t WHERE t.entity_type = d.entity_type AND t.entity_id = d.entity_id)
RETURNING entity_type, entity_id
"""

# Entity totals over every day, for the entities a rollup touched ($1: their types, $2: ids):
# exact sums of the exact daily rows.
REFRESH_ENTITIES = """
WITH touched AS (SELECT * FROM unnest($1::text[], $2::text[]) AS t(entity_type, entity_id)),
days AS (
    SELECT d.* FROM entity_costs_daily d JOIN touched USING (entity_type, entity_id)
),
services AS (
    SELECT entity_type, entity_id, jsonb_object_agg(key, v::text) AS m FROM (
        SELECT entity_type, entity_id, key, sum(value::numeric) AS v
        FROM days, jsonb_each_text(cost_by_service) GROUP BY 1, 2, 3) x GROUP BY 1, 2
),
categories AS (
    SELECT entity_type, entity_id, jsonb_object_agg(key, v::text) AS m FROM (
        SELECT entity_type, entity_id, key, sum(value::numeric) AS v
        FROM days, jsonb_each_text(cost_by_category) GROUP BY 1, 2, 3) x GROUP BY 1, 2
),
usage AS (
    SELECT entity_type, entity_id, jsonb_object_agg(key, v) AS m FROM (
        SELECT entity_type, entity_id, key, sum(value::numeric) AS v
        FROM days, jsonb_each_text(usage_metrics) GROUP BY 1, 2, 3) x GROUP BY 1, 2
),
totals AS (
    SELECT entity_type, entity_id, max(podcast_id) AS podcast_id, sum(cost_usd) AS cost,
           sum(event_count) AS events
    FROM days GROUP BY 1, 2
),
gone AS (
    DELETE FROM entity_costs e USING touched t
    WHERE e.entity_type = t.entity_type AND e.entity_id = t.entity_id
    AND NOT EXISTS (SELECT 1 FROM totals x WHERE x.entity_type = e.entity_type
                    AND x.entity_id = e.entity_id)
)
INSERT INTO entity_costs AS e (entity_type, entity_id, podcast_id, total_cost_usd,
    cost_by_service, cost_by_category, usage_metrics, event_count, calculated_at)
SELECT t.entity_type, t.entity_id, t.podcast_id, t.cost, coalesce(s.m, '{}'), coalesce(c.m, '{}'),
       coalesce(u.m, '{}'), t.events, now()
FROM totals t
LEFT JOIN services s USING (entity_type, entity_id)
LEFT JOIN categories c USING (entity_type, entity_id)
LEFT JOIN usage u USING (entity_type, entity_id)
ON CONFLICT (entity_type, entity_id) DO UPDATE SET
    podcast_id = EXCLUDED.podcast_id, total_cost_usd = EXCLUDED.total_cost_usd,
    cost_by_service = EXCLUDED.cost_by_service, cost_by_category = EXCLUDED.cost_by_category,
    usage_metrics = EXCLUDED.usage_metrics, event_count = EXCLUDED.event_count,
    calculated_at = now()
"""

# The month of $1, the exact sum of the month's daily rows ($2, $3: its first and last day).
UPSERT_MONTH = """
WITH days AS (SELECT * FROM cost_global_daily WHERE date BETWEEN $2 AND $3),
services AS (
    SELECT jsonb_object_agg(key, v::text) AS m FROM (
        SELECT key, sum(value::numeric) AS v FROM days, jsonb_each_text(cost_by_service_json)
        GROUP BY key) x
),
podcasts AS (
    SELECT jsonb_object_agg(entity_id, v::text) AS m FROM (
        SELECT entity_id, sum(cost_usd) AS v FROM entity_costs_daily
        WHERE entity_type = 'podcast' AND date BETWEEN $2 AND $3 GROUP BY entity_id) x
)
INSERT INTO cost_monthly_summary AS m (year, month, jobs, ai_calls, cpu_ms, tokens_in,
    tokens_out, cost_usd, cost_by_service, podcast_breakdown, days_rolled, updated_at)
SELECT extract(year FROM $1::date)::int, extract(month FROM $1::date)::int,
       coalesce(sum(jobs), 0), coalesce(sum(ai_calls), 0), coalesce(sum(cpu_ms), 0),
       coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), coalesce(sum(cost_usd), 0),
       coalesce((SELECT m FROM services), '{}'), coalesce((SELECT m FROM podcasts), '{}'),
       count(*), now()
FROM days
ON CONFLICT (year, month) DO UPDATE SET
    jobs = EXCLUDED.jobs, ai_calls = EXCLUDED.ai_calls, cpu_ms = EXCLUDED.cpu_ms,
    tokens_in = EXCLUDED.tokens_in, tokens_out = EXCLUDED.tokens_out,
    cost_usd = EXCLUDED.cost_usd, cost_by_service = EXCLUDED.cost_by_service,
    podcast_breakdown = EXCLUDED.podcast_breakdown, days_rolled = EXCLUDED.days_rolled,
    updated_at = now()
"""

# The day's entities ($1: the day).
TOUCHED_ENTITIES = """
SELECT DISTINCT 'episode' AS entity_type, episode_id AS entity_id
FROM rollup_day_groups WHERE date = $1 AND episode_id IS NOT NULL
UNION
SELECT DISTINCT 'podcast', podcast_id FROM rollup_day_groups
WHERE date = $1 AND podcast_id IS NOT NULL
"""
