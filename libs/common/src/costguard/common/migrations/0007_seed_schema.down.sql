-- Back to 0006's shape. Rows that hold NULLs in columns 0006 had NOT NULL get 0006's
-- defaults first; job_id and context_type are dropped with what they held.
ALTER TABLE cost_global_daily DROP COLUMN created_at;
UPDATE cost_global_daily SET jobs = coalesce(jobs, 0), ai_calls = coalesce(ai_calls, 0),
    cpu_ms = coalesce(cpu_ms, 0), tokens_in = coalesce(tokens_in, 0),
    tokens_out = coalesce(tokens_out, 0), cost_usd = coalesce(cost_usd, 0),
    tier_breakdown_json = coalesce(tier_breakdown_json, '{}'), updated_at = coalesce(updated_at, now())
WHERE jobs IS NULL OR ai_calls IS NULL OR cpu_ms IS NULL OR tokens_in IS NULL
   OR tokens_out IS NULL OR cost_usd IS NULL OR tier_breakdown_json IS NULL OR updated_at IS NULL;
ALTER TABLE cost_global_daily
    ALTER COLUMN jobs SET NOT NULL, ALTER COLUMN ai_calls SET NOT NULL,
    ALTER COLUMN cpu_ms SET NOT NULL, ALTER COLUMN tokens_in SET NOT NULL,
    ALTER COLUMN tokens_out SET NOT NULL, ALTER COLUMN cost_usd SET NOT NULL,
    ALTER COLUMN tier_breakdown_json SET DEFAULT '{}'::jsonb,
    ALTER COLUMN tier_breakdown_json SET NOT NULL, ALTER COLUMN updated_at SET NOT NULL;

DROP INDEX cost_user_daily_tier_date_idx;
ALTER TABLE cost_user_daily DROP COLUMN created_at;
UPDATE cost_user_daily SET jobs = coalesce(jobs, 0), ai_calls = coalesce(ai_calls, 0),
    cpu_ms = coalesce(cpu_ms, 0), tokens_in = coalesce(tokens_in, 0),
    tokens_out = coalesce(tokens_out, 0), cost_usd = coalesce(cost_usd, 0),
    updated_at = coalesce(updated_at, now())
WHERE jobs IS NULL OR ai_calls IS NULL OR cpu_ms IS NULL OR tokens_in IS NULL
   OR tokens_out IS NULL OR cost_usd IS NULL OR updated_at IS NULL;
ALTER TABLE cost_user_daily
    ALTER COLUMN jobs SET NOT NULL, ALTER COLUMN ai_calls SET NOT NULL,
    ALTER COLUMN cpu_ms SET NOT NULL, ALTER COLUMN tokens_in SET NOT NULL,
    ALTER COLUMN tokens_out SET NOT NULL, ALTER COLUMN cost_usd SET NOT NULL,
    ALTER COLUMN updated_at SET NOT NULL;

DROP INDEX telemetry_llm_events_model_created_idx;
UPDATE telemetry_llm_events SET cache_hit = coalesce(cache_hit, false),
    duration_ms = coalesce(duration_ms, 0), success = coalesce(success, true),
    created_at = coalesce(created_at, now())
WHERE cache_hit IS NULL OR duration_ms IS NULL OR success IS NULL OR created_at IS NULL;
ALTER TABLE telemetry_llm_events
    DROP COLUMN context_type,
    ALTER COLUMN event_id DROP DEFAULT,
    ALTER COLUMN input_tokens SET DEFAULT 0,
    ALTER COLUMN output_tokens SET DEFAULT 0,
    ALTER COLUMN cache_hit SET NOT NULL,
    ALTER COLUMN duration_ms SET DEFAULT 0,
    ALTER COLUMN duration_ms SET NOT NULL,
    ALTER COLUMN success SET DEFAULT true,
    ALTER COLUMN success SET NOT NULL,
    ALTER COLUMN created_at SET NOT NULL;
ALTER TABLE telemetry_llm_events RENAME COLUMN duration_ms TO latency_ms;
ALTER TABLE telemetry_llm_events RENAME COLUMN llm_model TO model;
CREATE INDEX telemetry_llm_events_model_idx ON telemetry_llm_events (model);

DROP INDEX telemetry_job_events_tier_started_idx;
DROP INDEX telemetry_job_events_type_started_idx;
DROP INDEX telemetry_job_events_user_started_idx;
UPDATE telemetry_job_events SET job_name = coalesce(job_name, job_type, 'job'),
    duration_ms = coalesce(duration_ms, 0), queue_wait_ms = coalesce(queue_wait_ms, 0),
    cpu_ms = coalesce(cpu_ms, 0), rows_read = coalesce(rows_read, 0),
    rows_written = coalesce(rows_written, 0), attempt = coalesce(attempt, 1),
    success = coalesce(success, false), created_at = coalesce(created_at, now())
WHERE job_name IS NULL OR duration_ms IS NULL OR queue_wait_ms IS NULL OR cpu_ms IS NULL
   OR rows_read IS NULL OR rows_written IS NULL OR attempt IS NULL OR success IS NULL
   OR created_at IS NULL;
ALTER TABLE telemetry_job_events
    DROP COLUMN job_id,
    ALTER COLUMN event_id DROP DEFAULT,
    ALTER COLUMN job_name SET NOT NULL,
    ALTER COLUMN domain SET DEFAULT 'default',
    ALTER COLUMN duration_ms SET DEFAULT 0,
    ALTER COLUMN duration_ms SET NOT NULL,
    ALTER COLUMN queue_wait_ms SET DEFAULT 0,
    ALTER COLUMN queue_wait_ms SET NOT NULL,
    ALTER COLUMN cpu_ms SET NOT NULL,
    ALTER COLUMN mem_mb_peak DROP DEFAULT,
    ALTER COLUMN mem_mb_peak TYPE double precision,
    ALTER COLUMN rows_read SET NOT NULL,
    ALTER COLUMN rows_written SET NOT NULL,
    ALTER COLUMN attempt SET NOT NULL,
    ALTER COLUMN success SET NOT NULL,
    ALTER COLUMN created_at SET NOT NULL;
ALTER TABLE telemetry_job_events RENAME COLUMN mem_mb_peak TO peak_mem_mb;
