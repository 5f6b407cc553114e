DROP VIEW cost_budget_caps;
DROP FUNCTION costguard_cap(bigint);
ALTER TABLE cost_budgets DROP CONSTRAINT cost_budgets_caps_non_negative;
ALTER TABLE cost_budgets
    ALTER COLUMN daily_cpu_ms_cap DROP NOT NULL,
    ALTER COLUMN daily_jobs_cap DROP NOT NULL,
    ALTER COLUMN llm_input_tokens_cap DROP NOT NULL,
    ALTER COLUMN llm_output_tokens_cap DROP NOT NULL;
UPDATE cost_budgets SET
    daily_cpu_ms_cap = nullif(daily_cpu_ms_cap, 9223372036854775807),
    daily_jobs_cap = nullif(daily_jobs_cap, 9223372036854775807),
    llm_input_tokens_cap = nullif(llm_input_tokens_cap, 9223372036854775807),
    llm_output_tokens_cap = nullif(llm_output_tokens_cap, 9223372036854775807),
    updated_at = coalesce(updated_at, now());
ALTER TABLE cost_budgets ALTER COLUMN updated_at SET NOT NULL;
ALTER TABLE cost_budgets RENAME COLUMN daily_cost_usd_cap TO cost_usd_per_day;
ALTER TABLE cost_budgets RENAME COLUMN llm_output_tokens_cap TO llm_output_tokens_per_day;
ALTER TABLE cost_budgets RENAME COLUMN llm_input_tokens_cap TO llm_input_tokens_per_day;
ALTER TABLE cost_budgets RENAME COLUMN daily_jobs_cap TO jobs_per_day;
ALTER TABLE cost_budgets RENAME COLUMN daily_cpu_ms_cap TO cpu_ms_per_day;
ALTER TABLE cost_budgets ADD CONSTRAINT cost_budgets_caps_non_negative CHECK (
    coalesce(cpu_ms_per_day, 0) >= 0 AND coalesce(jobs_per_day, 0) >= 0
    AND coalesce(llm_input_tokens_per_day, 0) >= 0
    AND coalesce(llm_output_tokens_per_day, 0) >= 0
);
