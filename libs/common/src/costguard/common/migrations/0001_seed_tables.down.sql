DROP TABLE cost_budgets;
DROP TABLE cost_global_daily;
DROP TABLE cost_user_daily;
DROP TABLE telemetry_llm_events;
DROP TABLE telemetry_job_events;
