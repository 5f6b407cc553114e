-- Estimated cost of one event in whole nano-dollars (rounded down), for the live
-- counters. Ingest and the counter rebuild both call these, so the two can never
-- disagree. Prices are arguments: they come from the environment (COST_* variables).
CREATE FUNCTION costguard_job_cost_nusd(
    cpu_ms bigint, rows_touched bigint, cpu_ms_price numeric, row_1k_price numeric
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN floor((cpu_ms * cpu_ms_price + rows_touched::numeric / 1000 * row_1k_price) * 1000000000);

CREATE FUNCTION costguard_llm_cost_nusd(
    input_tokens bigint, output_tokens bigint, cache_hit boolean,
    input_price numeric, output_price numeric
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN cache_hit THEN 0
            ELSE floor((input_tokens * input_price + output_tokens * output_price) * 1000000000)
       END;

-- The instant that decides a job's day (DESIGN.md "Rollup"): started_at, else created_at.
CREATE INDEX telemetry_job_events_event_time_idx
    ON telemetry_job_events ((coalesce(started_at, created_at)));
