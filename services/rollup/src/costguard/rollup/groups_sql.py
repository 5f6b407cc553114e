"""A day's events grouped at the finest grain every aggregate is derived from.

``rollup_day_groups`` holds one row per (user, tier, episode, podcast, service, category,
unpriced item, reason) of a day, and one per owner of the S3 storage held during it
(``storage``). Each event table is grouped on its own first, with only the sums it has
(integer sums for counts, one ``numeric`` sum of the stored costs), so the day's rows are
read once and every later statement reads the groups, a few per user and entity.

A full rollup rebuilds a day's groups (``EVENT_GROUPS`` into the table, ``STORAGE_GROUPS``);
a refresh groups only the events above the day's watermark into ``rollup_delta`` and adds
them to the day's groups (``MERGE_DELTA``), re-deriving just the users and entities they
touched (``costguard.rollup.refresh``).
"""

from __future__ import annotations

from costguard.common.storage import HELD_DURING_DAY_SQL, STORAGE_SERVICE
from costguard.rollup.sql import TIER_FIGURES

_COLUMNS = """(date, source, user_id, tier, episode_id, podcast_id, service, category, unpriced,
    reason, vote, events, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, emails, storage_mb,
    cost, estimated_events, estimated_cost, out_of_range, key_hash)"""

# A group's key, and the hash its row is found by (with the key compared in full: two keys
# may share a hash).
_KEY = "source, user_id, tier, episode_id, podcast_id, service, category, unpriced, reason"
_KEY_HASH = f"hashtextextended(ROW({_KEY})::text, 0)"
_SAME_KEY = " AND ".join(
    f"g.{column} IS NOT DISTINCT FROM x.{column}" for column in _KEY.split(", ")
)

# $1, $2: the day's bounds; $3: the tier of what has no user (or no tier); $4: the most
# cpu_ms, $5: input tokens, $6: output tokens of one event (costguard.common.event_ranges:
# a row stored outside them counts at the nearest end, and is ``out_of_range``); $7: the
# day; $8 < id <= $9: the job events, $10 < id <= $11: the LLM events and $12 < id <= $13:
# the cost events to group (all of the day's up to the watermark, or those above the last).
# ``vote`` decides a user's tier for the day (their latest event's; costguard_tier_vote,
# which grows with the instant: the vote of a group's latest instant, computed once per
# group rather than per event, is the greatest of its events' votes). A
# call whose usage never arrived is estimated; an event priced other than by its own price
# says why (``reason``) under its ``unpriced`` item. Uploads count their object's size in
# ``storage_mb``.
_EVENT_GROUPS_TEMPLATE = """
INSERT INTO TARGET COLUMNS
SELECT g.*, KEY_HASH FROM (
SELECT $7::date, 'job' AS source, user_id, tier, episode_id, podcast_id, 'compute' AS service,
       'compute' AS category, NULL AS unpriced, NULL AS reason,
       costguard_tier_vote(max(coalesce(started_at, created_at))), count(*), count(*), 0,
       sum(least(greatest(coalesce(cpu_ms, 0), 0), $4)), 0, 0, 0, 0, sum(cost_usd), 0, 0,
       count(*) FILTER (WHERE cpu_ms NOT BETWEEN 0 AND $4)
FROM telemetry_job_events
WHERE coalesce(started_at, created_at) >= $1 AND coalesce(started_at, created_at) < $2
AND id > $8 AND id <= $9
GROUP BY user_id, tier, episode_id, podcast_id
UNION ALL
SELECT $7::date, 'llm', user_id, tier, episode_id, podcast_id, provider, 'ai',
       CASE WHEN unpriced_reason IS NOT NULL THEN 'llm:' || provider || '/' || llm_model END,
       unpriced_reason, costguard_tier_vote(max(created_at)), count(*), 0, count(*), 0,
       sum(least(greatest(coalesce(input_tokens, 0), 0), $5)),
       sum(least(greatest(coalesce(output_tokens, 0), 0), $6)), 0, 0, sum(cost_usd),
       count(*) FILTER (
           WHERE NOT coalesce(usage_reported, true) AND NOT coalesce(cache_hit, false)),
       coalesce(sum(cost_usd) FILTER (
           WHERE NOT coalesce(usage_reported, true) AND NOT coalesce(cache_hit, false)), 0),
       count(*) FILTER (WHERE input_tokens NOT BETWEEN 0 AND $5
                        OR output_tokens NOT BETWEEN 0 AND $6)
FROM telemetry_llm_events
WHERE created_at >= $1 AND created_at < $2 AND id > $10 AND id <= $11
GROUP BY user_id, tier, episode_id, podcast_id, provider, 9, unpriced_reason
UNION ALL
SELECT $7::date, 'cost', user_id,
       CASE WHEN user_id IS NULL THEN $3 ELSE coalesce(tier, $3) END,
       episode_id, podcast_id, service, cost_category, unpriced_item, unpriced_reason,
       coalesce(costguard_tier_vote(max(created_at) FILTER (WHERE tier IS NOT NULL)), -2),
       count(*), 0, 0, 0, 0, 0,
       sum(CASE WHEN unit = 'emails' THEN quantity ELSE 0 END),
       sum(CASE WHEN cost_category = 'unpriced' OR event_type <> 's3_operation'
                     OR service NOT IN ('s3_put', 's3_copy') THEN 0
                WHEN jsonb_typeof(metadata -> 'size_bytes') = 'number'
                THEN GREATEST((metadata ->> 'size_bytes')::numeric, 0) / 1048576
                WHEN jsonb_typeof(metadata -> 'file_size_mb') = 'number'
                THEN GREATEST((metadata ->> 'file_size_mb')::numeric, 0)
                ELSE 0 END),
       sum(cost_usd), 0, 0, 0
FROM cost_events
WHERE created_at >= $1 AND created_at < $2 AND id > $12 AND id <= $13
GROUP BY user_id, 4, episode_id, podcast_id, service, cost_category, unpriced_item,
         unpriced_reason
) g
"""
EVENT_GROUPS = (
    _EVENT_GROUPS_TEMPLATE.replace("TARGET", "rollup_day_groups")
    .replace("COLUMNS", _COLUMNS)
    .replace("KEY_HASH", _KEY_HASH)
)
DELTA_GROUPS = (
    _EVENT_GROUPS_TEMPLATE.replace("TARGET", "rollup_delta")
    .replace("COLUMNS", _COLUMNS)
    .replace("KEY_HASH", _KEY_HASH)
)

# The S3 storage held during the day, per owner (costguard.common.storage: not an event, so
# no ``events``; attributed to whoever stored it, and never deciding their tier). $1, $2:
# the day's bounds; $3: the tier of what has no user; $4: the price per byte-second; $5:
# the day.
_STORAGE_GROUPS_TEMPLATE = """
INSERT INTO rollup_day_groups COLUMNS
SELECT g.*, KEY_HASH FROM (
SELECT $5::date, 'storage' AS source, h.user_id,
       CASE WHEN h.user_id IS NULL THEN $3 ELSE coalesce(h.tier, $3) END AS tier,
       h.episode_id, h.podcast_id, 'STORAGE_SERVICE' AS service, 'aws' AS category,
       NULL AS unpriced, NULL AS reason,
       max(CASE WHEN h.tier IS NULL THEN -2 ELSE -1 END), 0, 0, 0, 0, 0, 0, 0, 0, sum(h.cost),
       0, 0, 0
FROM (HELD_DURING_DAY) h
GROUP BY 3, 4, 5, 6
) g
"""
STORAGE_GROUPS = (
    _STORAGE_GROUPS_TEMPLATE.replace("COLUMNS", _COLUMNS)
    .replace("KEY_HASH", _KEY_HASH)
    .replace("HELD_DURING_DAY", HELD_DURING_DAY_SQL.strip().replace("$3", "$4"))
    .replace("STORAGE_SERVICE", STORAGE_SERVICE)
)

# The day's cost by model, service and domain (``cost_breakdown_daily``; the migration 0017
# says what each key is), from the raw events of the same id ranges the groups read: $1,
# $2: the day's bounds; $3: the day; $4, $5: the most input and output tokens of one event
# (clamped as the groups clamp them, so the sums agree with ``cost_global_daily``); $6 <
# id <= $7: the job events, $8 < id <= $9: the LLM events, $10 < id <= $11: the cost
# events. Added to the rows the day has: a full rollup clears them first (``CLEAR_BREAKDOWN``)
# and reads every event up to the watermark, a refresh only those above the last one.
ADD_BREAKDOWN = """
INSERT INTO cost_breakdown_daily AS b
    (date, dimension, key, cost_usd, tokens_in, tokens_out, calls, events)
SELECT $3::date, dimension, key, coalesce(sum(cost), 0), sum(tokens_in), sum(tokens_out),
       sum(calls), sum(events)
FROM (
    SELECT k.dimension, k.key, sum(e.cost_usd) AS cost, 0::numeric AS tokens_in,
           0::numeric AS tokens_out, 0::bigint AS calls, count(*) AS events
    FROM telemetry_job_events e
    CROSS JOIN LATERAL (VALUES ('service', 'compute'), ('domain', e.domain)) k (dimension, key)
    WHERE coalesce(e.started_at, e.created_at) >= $1
    AND coalesce(e.started_at, e.created_at) < $2 AND e.id > $6 AND e.id <= $7
    GROUP BY 1, 2
    UNION ALL
    SELECT k.dimension, k.key, sum(e.cost_usd),
           sum(least(greatest(coalesce(e.input_tokens, 0), 0), $4)),
           sum(least(greatest(coalesce(e.output_tokens, 0), 0), $5)), count(*), count(*)
    FROM telemetry_llm_events e
    CROSS JOIN LATERAL (VALUES ('model', e.provider || '/' || e.llm_model),
                               ('service', e.provider), ('domain', e.domain)) k (dimension, key)
    WHERE e.created_at >= $1 AND e.created_at < $2 AND e.id > $8 AND e.id <= $9
    GROUP BY 1, 2
    UNION ALL
    SELECT k.dimension, k.key, sum(e.cost_usd), 0, 0, sum(k.calls), count(*)
    FROM cost_events e
    CROSS JOIN LATERAL (VALUES
        ('service', e.service, 0),
        ('model', CASE WHEN e.cost_category = 'ai'
                            AND jsonb_typeof(e.metadata -> 'model') = 'string'
                       THEN left(e.service || '/' || (e.metadata ->> 'model'), 200) END, 1)
    ) k (dimension, key, calls)
    WHERE e.created_at >= $1 AND e.created_at < $2 AND e.id > $10 AND e.id <= $11
    AND k.key IS NOT NULL
    GROUP BY 1, 2
) x
GROUP BY dimension, key
ON CONFLICT (date, dimension, key) DO UPDATE SET
    cost_usd = b.cost_usd + EXCLUDED.cost_usd, tokens_in = b.tokens_in + EXCLUDED.tokens_in,
    tokens_out = b.tokens_out + EXCLUDED.tokens_out, calls = b.calls + EXCLUDED.calls,
    events = b.events + EXCLUDED.events, updated_at = now()
"""

CLEAR_BREAKDOWN = "DELETE FROM cost_breakdown_daily WHERE date = $1"

CLEAR_DAY = "DELETE FROM rollup_day_groups WHERE date = $1"

CLEAR_STORAGE = "DELETE FROM rollup_day_groups WHERE date = $1 AND source = 'storage'"

CREATE_DELTA = """
CREATE TEMP TABLE IF NOT EXISTS rollup_delta
    (LIKE rollup_day_groups INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""

# The new groups added to the day's: those whose key the day has are added to it (a cost
# stays NULL only while every event of its group is unpriced), the others inserted.
_MERGE_DELTA_TEMPLATE = """
WITH added AS (
    UPDATE rollup_day_groups g SET
        vote = greatest(g.vote, x.vote), events = g.events + x.events, jobs = g.jobs + x.jobs,
        ai_calls = g.ai_calls + x.ai_calls, cpu_ms = g.cpu_ms + x.cpu_ms,
        tokens_in = g.tokens_in + x.tokens_in, tokens_out = g.tokens_out + x.tokens_out,
        emails = g.emails + x.emails, storage_mb = g.storage_mb + x.storage_mb,
        cost = CASE WHEN g.cost IS NULL AND x.cost IS NULL THEN NULL
                    ELSE coalesce(g.cost, 0) + coalesce(x.cost, 0) END,
        estimated_events = g.estimated_events + x.estimated_events,
        estimated_cost = g.estimated_cost + x.estimated_cost,
        out_of_range = g.out_of_range + x.out_of_range
    FROM rollup_delta x
    WHERE g.date = x.date AND g.key_hash = x.key_hash AND SAME_KEY
    RETURNING KEY_OF_X
)
INSERT INTO rollup_day_groups COLUMNS
SELECT * FROM rollup_delta x
WHERE NOT EXISTS (SELECT 1 FROM added g WHERE g.key_hash = x.key_hash AND SAME_KEY)
"""
MERGE_DELTA = (
    _MERGE_DELTA_TEMPLATE.replace("COLUMNS", _COLUMNS)
    .replace("SAME_KEY", _SAME_KEY)
    .replace("KEY_OF_X", ", ".join(f"x.{c}" for c in ["key_hash", *_KEY.split(", ")]))
)

# Whom the new events touched; and the entities whose uploads' size changed (their usage
# shows the day's storage_mb rounded once, so it is derived again from their groups).
DELTA_TOUCHED = """
SELECT array_agg(DISTINCT user_id) FILTER (WHERE user_id IS NOT NULL) AS users,
       array_agg(DISTINCT episode_id) FILTER (WHERE episode_id IS NOT NULL) AS episodes,
       array_agg(DISTINCT podcast_id) FILTER (WHERE podcast_id IS NOT NULL) AS podcasts,
       array_agg(DISTINCT episode_id) FILTER (WHERE episode_id IS NOT NULL AND storage_mb <> 0)
           AS uploading_episodes,
       array_agg(DISTINCT podcast_id) FILTER (WHERE podcast_id IS NOT NULL AND storage_mb <> 0)
           AS uploading_podcasts,
       coalesce(sum(out_of_range), 0) AS out_of_range
FROM rollup_delta
"""

# Whether a cost event above the watermark ($1 < id <= $2) stored, copied or deleted an S3
# object: then the storage held during a day may have changed (costguard.common.storage).
OBJECTS_CHANGED = """
SELECT EXISTS (SELECT 1 FROM cost_events WHERE id > $1 AND id <= $2
               AND event_type = 's3_operation' AND service IN ('s3_put', 's3_copy', 's3_delete'))
"""

OUT_OF_RANGE = "SELECT coalesce(sum(out_of_range), 0) FROM rollup_day_groups WHERE date = $1"

WATERMARK = "SELECT * FROM rollup_day_watermarks WHERE date = $1"

SET_WATERMARK = """
INSERT INTO rollup_day_watermarks AS w
    (date, job_event_id, llm_event_id, cost_event_id, price_sheet_id, refreshed_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (date) DO UPDATE SET
    job_event_id = EXCLUDED.job_event_id, llm_event_id = EXCLUDED.llm_event_id,
    cost_event_id = EXCLUDED.cost_event_id, price_sheet_id = EXCLUDED.price_sheet_id,
    refreshed_at = now()
"""

# The day's global row plus the new events ($1: the day, $2: its sheet): counts and costs
# added, breakdowns added key by key (costguard_jsonb_sum); the tier breakdown from the
# users' rows (just derived for those the new events touched: a user may have changed tier)
# and what has no user; the unpriced items from the day's groups that hold one.
UPSERT_GLOBAL_ADDED = """
WITH added AS (
    SELECT coalesce(sum(events), 0) AS events, coalesce(sum(jobs), 0) AS jobs,
           coalesce(sum(ai_calls), 0) AS ai_calls, coalesce(sum(cpu_ms), 0) AS cpu_ms,
           coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,
           coalesce(sum(cost), 0) AS cost, coalesce(sum(estimated_events), 0) AS estimated_events,
           coalesce(sum(estimated_cost), 0) AS estimated_cost
    FROM rollup_delta
),
services AS (
    SELECT coalesce(jsonb_object_agg(service, cost::text), '{}'::jsonb) AS m
    FROM (SELECT service, sum(cost) AS cost FROM rollup_delta GROUP BY service) s
),
users AS (
    SELECT tier, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd AS cost
    FROM cost_user_daily WHERE date = $1
    UNION ALL
    SELECT tier, sum(jobs), sum(ai_calls), sum(cpu_ms), sum(tokens_in), sum(tokens_out), sum(cost)
    FROM rollup_day_groups WHERE date = $1 AND user_id IS NULL GROUP BY tier
),
TIER_FIGURES
unpriced AS (
    SELECT unpriced, sum(cost) AS cost, sum(events) AS events,
           string_agg(DISTINCT reason, '; ' ORDER BY reason) AS reason
    FROM rollup_day_groups WHERE date = $1 AND unpriced IS NOT NULL GROUP BY unpriced
)
UPDATE cost_global_daily g SET
    jobs = g.jobs + a.jobs, ai_calls = g.ai_calls + a.ai_calls, cpu_ms = g.cpu_ms + a.cpu_ms,
    tokens_in = g.tokens_in + a.tokens_in, tokens_out = g.tokens_out + a.tokens_out,
    cost_usd = g.cost_usd + a.cost,
    tier_breakdown_json = coalesce((SELECT jsonb_object_agg(tier, figures) FROM tiers), '{}'),
    cost_by_service_json = costguard_jsonb_sum(g.cost_by_service_json, s.m),
    unpriced_cost_usd = coalesce((SELECT sum(cost) FROM unpriced), 0),
    unpriced_json = coalesce((SELECT jsonb_object_agg(unpriced, jsonb_build_object(
        'cost_usd', cost::text, 'events', events, 'reason', reason)) FROM unpriced), '{}'),
    events = g.events + a.events, estimated_cost_usd = g.estimated_cost_usd + a.estimated_cost,
    estimated_events = g.estimated_events + a.estimated_events, price_sheet_id = $2,
    updated_at = now()
FROM added a, services s
WHERE g.date = $1
RETURNING g.cost_usd, g.events, (SELECT count(*) FROM cost_user_daily WHERE date = $1) AS users
""".replace("TIER_FIGURES", TIER_FIGURES)
