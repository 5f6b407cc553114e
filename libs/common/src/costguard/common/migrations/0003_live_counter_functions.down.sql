DROP INDEX telemetry_job_events_event_time_idx;
DROP FUNCTION costguard_llm_cost_nusd(bigint, bigint, boolean, numeric, numeric);
DROP FUNCTION costguard_job_cost_nusd(bigint, bigint, numeric, numeric);
