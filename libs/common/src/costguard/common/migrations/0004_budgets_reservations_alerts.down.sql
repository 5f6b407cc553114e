DROP TABLE budget_alerts;
ALTER TABLE telemetry_llm_events DROP COLUMN reservation_id;
ALTER TABLE telemetry_job_events DROP COLUMN reservation_id;
DROP TRIGGER cost_budgets_notify ON cost_budgets;
DROP FUNCTION costguard_notify_budget_change();
ALTER TABLE cost_budgets
    DROP CONSTRAINT cost_budgets_cost_non_negative,
    DROP COLUMN alert_thresholds,
    DROP COLUMN cost_usd_per_day;
