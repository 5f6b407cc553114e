-- Money that is summed again later is stored exact. Each day's figures used to be rounded to
-- 8 places, and a month, an entity's total or a range of days added those rounded days up:
-- two days of $0.000000125 made $0.00000026, not $0.00000025. Unconstrained numeric holds
-- every sum exactly (and every value the columns held before, unchanged); what is shown is
-- rounded once, to 8 places, where it is shown (the gateway, the rollup's RPC answers).
-- The jsonb breakdowns (by tier, service, category, podcast, unpriced item) hold the same
-- exact sums as decimal text; nothing here needs rewriting.
ALTER TABLE cost_user_daily ALTER COLUMN cost_usd TYPE numeric;
ALTER TABLE cost_global_daily
    ALTER COLUMN cost_usd TYPE numeric,
    ALTER COLUMN unpriced_cost_usd TYPE numeric;
ALTER TABLE entity_costs_daily ALTER COLUMN cost_usd TYPE numeric;
ALTER TABLE entity_costs ALTER COLUMN total_cost_usd TYPE numeric;
ALTER TABLE cost_monthly_summary ALTER COLUMN cost_usd TYPE numeric;
ALTER TABLE rollup_runs ALTER COLUMN cost_usd TYPE numeric;
