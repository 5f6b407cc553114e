ALTER TABLE telemetry_llm_events DROP COLUMN source, DROP COLUMN reported_cost_usd;
DROP TABLE throttle_user_decisions_daily;
DROP TABLE throttle_decisions_daily;
DROP TABLE cost_breakdown_daily;
