-- The first seed's four event and daily tables, exactly: every seed column under the seed's
-- name, with the seed's nullability and default, and every seed index (docs/schema.md lists
-- each widened type and why). A row written with only the seed's columns, as the seed's own
-- code writes it, is valid: the columns costguard adds have defaults or are nullable.

-- telemetry_job_events ------------------------------------------------------------------
ALTER TABLE telemetry_job_events RENAME COLUMN peak_mem_mb TO mem_mb_peak;
ALTER TABLE telemetry_job_events
    ADD COLUMN job_id varchar(64),
    ALTER COLUMN event_id SET DEFAULT gen_random_uuid(),
    ALTER COLUMN job_name DROP NOT NULL,
    ALTER COLUMN domain DROP DEFAULT,
    ALTER COLUMN duration_ms DROP NOT NULL,
    ALTER COLUMN duration_ms DROP DEFAULT,
    ALTER COLUMN queue_wait_ms DROP NOT NULL,
    ALTER COLUMN queue_wait_ms DROP DEFAULT,
    ALTER COLUMN cpu_ms DROP NOT NULL,
    ALTER COLUMN mem_mb_peak TYPE integer USING round(mem_mb_peak)::integer,
    ALTER COLUMN mem_mb_peak SET DEFAULT 0,
    ALTER COLUMN rows_read DROP NOT NULL,
    ALTER COLUMN rows_written DROP NOT NULL,
    ALTER COLUMN attempt DROP NOT NULL,
    ALTER COLUMN success DROP NOT NULL,
    ALTER COLUMN created_at DROP NOT NULL;
CREATE INDEX telemetry_job_events_user_started_idx ON telemetry_job_events (user_id, started_at);
CREATE INDEX telemetry_job_events_type_started_idx ON telemetry_job_events (job_type, started_at);
CREATE INDEX telemetry_job_events_tier_started_idx ON telemetry_job_events (tier, started_at);

-- telemetry_llm_events ------------------------------------------------------------------
ALTER TABLE telemetry_llm_events RENAME COLUMN model TO llm_model;
ALTER TABLE telemetry_llm_events RENAME COLUMN latency_ms TO duration_ms;
-- What the call was for; rows stored before this column existed are 'general', the
-- default the SDK writes when the caller names none.
ALTER TABLE telemetry_llm_events ADD COLUMN context_type varchar(32) NOT NULL DEFAULT 'general';
ALTER TABLE telemetry_llm_events
    ALTER COLUMN context_type DROP DEFAULT,
    ALTER COLUMN event_id SET DEFAULT gen_random_uuid(),
    ALTER COLUMN input_tokens DROP DEFAULT,
    ALTER COLUMN output_tokens DROP DEFAULT,
    ALTER COLUMN cache_hit DROP NOT NULL,
    ALTER COLUMN duration_ms DROP NOT NULL,
    ALTER COLUMN duration_ms DROP DEFAULT,
    ALTER COLUMN success DROP NOT NULL,
    ALTER COLUMN success DROP DEFAULT,
    ALTER COLUMN created_at DROP NOT NULL;
DROP INDEX telemetry_llm_events_model_idx;
CREATE INDEX telemetry_llm_events_model_created_idx
    ON telemetry_llm_events (llm_model, created_at);

-- cost_user_daily and cost_global_daily ---------------------------------------------------
ALTER TABLE cost_user_daily
    ALTER COLUMN jobs DROP NOT NULL,
    ALTER COLUMN ai_calls DROP NOT NULL,
    ALTER COLUMN cpu_ms DROP NOT NULL,
    ALTER COLUMN tokens_in DROP NOT NULL,
    ALTER COLUMN tokens_out DROP NOT NULL,
    ALTER COLUMN cost_usd DROP NOT NULL,
    ALTER COLUMN updated_at DROP NOT NULL,
    ADD COLUMN created_at timestamptz DEFAULT now();
CREATE INDEX cost_user_daily_tier_date_idx ON cost_user_daily (tier, date);

ALTER TABLE cost_global_daily
    ALTER COLUMN jobs DROP NOT NULL,
    ALTER COLUMN ai_calls DROP NOT NULL,
    ALTER COLUMN cpu_ms DROP NOT NULL,
    ALTER COLUMN tokens_in DROP NOT NULL,
    ALTER COLUMN tokens_out DROP NOT NULL,
    ALTER COLUMN cost_usd DROP NOT NULL,
    ALTER COLUMN tier_breakdown_json DROP NOT NULL,
    ALTER COLUMN tier_breakdown_json DROP DEFAULT,
    ALTER COLUMN updated_at DROP NOT NULL,
    ADD COLUMN created_at timestamptz DEFAULT now();
