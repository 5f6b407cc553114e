-- Budgets in the seed's shape: its four caps under its names, NOT NULL as the seed has them.
-- "No cap" is the largest bigint, 9223372036854775807: no count ever reaches it, so a
-- seed-style `used >= cap` check never trips on it. costguard_cap() reads it back as NULL,
-- which is how the API, the throttle and the alerts treat "no cap". The cost cap in USD is
-- costguard's own addition and stays nullable (NULL: no cost cap).
ALTER TABLE cost_budgets RENAME COLUMN cpu_ms_per_day TO daily_cpu_ms_cap;
ALTER TABLE cost_budgets RENAME COLUMN jobs_per_day TO daily_jobs_cap;
ALTER TABLE cost_budgets RENAME COLUMN llm_input_tokens_per_day TO llm_input_tokens_cap;
ALTER TABLE cost_budgets RENAME COLUMN llm_output_tokens_per_day TO llm_output_tokens_cap;
ALTER TABLE cost_budgets RENAME COLUMN cost_usd_per_day TO daily_cost_usd_cap;
ALTER TABLE cost_budgets DROP CONSTRAINT cost_budgets_caps_non_negative;
UPDATE cost_budgets SET
    daily_cpu_ms_cap = coalesce(daily_cpu_ms_cap, 9223372036854775807),
    daily_jobs_cap = coalesce(daily_jobs_cap, 9223372036854775807),
    llm_input_tokens_cap = coalesce(llm_input_tokens_cap, 9223372036854775807),
    llm_output_tokens_cap = coalesce(llm_output_tokens_cap, 9223372036854775807);
ALTER TABLE cost_budgets
    ALTER COLUMN daily_cpu_ms_cap SET NOT NULL,
    ALTER COLUMN daily_jobs_cap SET NOT NULL,
    ALTER COLUMN llm_input_tokens_cap SET NOT NULL,
    ALTER COLUMN llm_output_tokens_cap SET NOT NULL,
    ALTER COLUMN updated_at DROP NOT NULL,
    ADD CONSTRAINT cost_budgets_caps_non_negative CHECK (
        daily_cpu_ms_cap >= 0 AND daily_jobs_cap >= 0
        AND llm_input_tokens_cap >= 0 AND llm_output_tokens_cap >= 0
    );

CREATE FUNCTION costguard_cap(cap bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN nullif(cap, 9223372036854775807);

-- Budgets as costguard reads them: NULL for no cap.
CREATE VIEW cost_budget_caps AS
SELECT id, apply_scope,
       costguard_cap(daily_cpu_ms_cap) AS daily_cpu_ms_cap,
       costguard_cap(daily_jobs_cap) AS daily_jobs_cap,
       costguard_cap(llm_input_tokens_cap) AS llm_input_tokens_cap,
       costguard_cap(llm_output_tokens_cap) AS llm_output_tokens_cap,
       daily_cost_usd_cap, alert_thresholds, enabled, updated_by, created_at, updated_at
FROM cost_budgets;
