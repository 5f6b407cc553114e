-- The rollup keeps each day's events grouped at the finest grain every aggregate is derived
-- from (user and tier, episode and podcast, service and category, what was not priced and
-- why), so that a near-live refresh adds the events that arrived since the last one to
-- these groups and re-derives only the users and entities they touched, instead of
-- scanning the whole day again. `source` is the table a group's events are from (`job`,
-- `llm`, `cost`), or `storage`: the S3 storage held during the day (not events); no two
-- groups of a day share a key, and `key_hash` (of the key) finds a group's row.
--
-- The groups are derived data: a full rollup of the day rebuilds them from the raw events,
-- and retention drops them with the day's events. So they are UNLOGGED (no WAL: rebuilt
-- where a rollup spends most of its writes), and so are the watermarks: after a crash,
-- or on a promoted replica, both are empty together and the next refresh of a day rolls it
-- up in full.
CREATE UNLOGGED TABLE rollup_day_groups (
    date             date NOT NULL,
    source           varchar(8) NOT NULL,
    user_id          varchar(64),
    tier             varchar(32),
    episode_id       varchar(64),
    podcast_id       varchar(64),
    service          varchar(64) NOT NULL,
    category         varchar(32),
    unpriced         text,
    reason           text,
    vote             bigint NOT NULL,
    events           bigint NOT NULL,
    jobs             bigint NOT NULL,
    ai_calls         bigint NOT NULL,
    cpu_ms           bigint NOT NULL,
    tokens_in        bigint NOT NULL,
    tokens_out       bigint NOT NULL,
    emails           numeric NOT NULL,
    storage_mb       numeric NOT NULL,
    cost             numeric,
    estimated_events bigint NOT NULL,
    estimated_cost   numeric NOT NULL,
    out_of_range     bigint NOT NULL,
    key_hash         bigint NOT NULL
);
CREATE INDEX rollup_day_groups_key ON rollup_day_groups (date, key_hash);
-- A refresh derives the users its new events touched from their groups.
CREATE INDEX rollup_day_groups_user ON rollup_day_groups (date, user_id);
CREATE INDEX rollup_day_groups_unpriced ON rollup_day_groups (date) WHERE unpriced IS NOT NULL;

-- How far each rolled-up day's groups reach: the highest id of each event table they
-- include (the ingest watermark read when the day was last rolled up or refreshed), and
-- the price sheet they were priced with. A refresh reads the events above these ids.
CREATE UNLOGGED TABLE rollup_day_watermarks (
    date            date PRIMARY KEY,
    job_event_id    bigint NOT NULL,
    llm_event_id    bigint NOT NULL,
    cost_event_id   bigint NOT NULL,
    price_sheet_id  bigint NOT NULL,
    refreshed_at    timestamptz NOT NULL DEFAULT now()
);

-- Breakdowns (jsonb objects of exact sums: money as decimal text, counts as numbers) added
-- key by key: a refresh adds the new events' breakdowns to a day's. A key in either is in
-- the sum, so a breakdown's keys are those a rollup of every event would give.
CREATE FUNCTION costguard_jsonb_sum(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (
    SELECT coalesce(jsonb_object_agg(key, CASE WHEN text_valued THEN to_jsonb(total::text)
                                               ELSE to_jsonb(total) END), '{}'::jsonb)
    FROM (
        SELECT key, sum((value #>> '{}')::numeric) AS total,
               bool_or(jsonb_typeof(value) = 'string') AS text_valued
        FROM (SELECT * FROM jsonb_each(coalesce(a, '{}'::jsonb))
              UNION ALL SELECT * FROM jsonb_each(coalesce(b, '{}'::jsonb))) e
        GROUP BY key
    ) s
);
