DROP INDEX telemetry_job_events_podcast_idx;
DROP INDEX telemetry_llm_events_podcast_idx;
DROP TABLE entity_costs_daily;
ALTER TABLE cost_monthly_summary DROP COLUMN days_rolled;
ALTER TABLE cost_global_daily
    DROP COLUMN cost_by_service_json,
    DROP COLUMN unpriced_json,
    DROP COLUMN unpriced_cost_usd,
    DROP COLUMN events,
    DROP COLUMN price_sheet_id;
ALTER TABLE cost_user_daily DROP COLUMN price_sheet_id;
DROP TABLE rollup_runs;
DROP TABLE rollup_dirty_dates;
DROP TABLE price_sheets;
