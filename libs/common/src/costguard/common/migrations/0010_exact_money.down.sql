-- Back to 8 places, rounded half away from zero (numeric round()), as the rollup of before
-- 0010 stored them; the decimal strings of the jsonb breakdowns are rounded the same way, so
-- that the code of before 0010 shows 8 places everywhere. Values that are not decimal strings
-- (a count, a reason) are left as they are, and so is a NULL (the functions are STRICT).
CREATE FUNCTION pg_temp.costguard_round_costs(costs jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(jsonb_object_agg(key, CASE
        WHEN jsonb_typeof(value) = 'string' AND value #>> '{}' ~ '^-?[0-9]+(\.[0-9]+)?$'
        THEN to_jsonb(round((value #>> '{}')::numeric, 8)::text)
        ELSE value END), '{}'::jsonb)
    FROM jsonb_each(costs)
$$;
-- Maps of figures ({"pro": {"cost_usd": "...", "jobs": 3}}): each figure's cost_usd rounded.
CREATE FUNCTION pg_temp.costguard_round_figures(figures jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(jsonb_object_agg(key, CASE
        WHEN jsonb_typeof(value) = 'object' THEN value || pg_temp.costguard_round_costs(
            jsonb_strip_nulls(jsonb_build_object('cost_usd', value -> 'cost_usd')))
        ELSE value END), '{}'::jsonb)
    FROM jsonb_each(figures)
$$;

ALTER TABLE rollup_runs ALTER COLUMN cost_usd TYPE numeric(18, 8) USING round(cost_usd, 8);

ALTER TABLE cost_monthly_summary ALTER COLUMN cost_usd TYPE numeric(18, 8) USING round(cost_usd, 8);
UPDATE cost_monthly_summary SET
    cost_by_service = pg_temp.costguard_round_costs(cost_by_service),
    podcast_breakdown = pg_temp.costguard_round_costs(podcast_breakdown);

ALTER TABLE entity_costs
    ALTER COLUMN total_cost_usd TYPE numeric(18, 8) USING round(total_cost_usd, 8);
UPDATE entity_costs SET
    cost_by_service = pg_temp.costguard_round_costs(cost_by_service),
    cost_by_category = pg_temp.costguard_round_costs(cost_by_category);

ALTER TABLE entity_costs_daily ALTER COLUMN cost_usd TYPE numeric(18, 8) USING round(cost_usd, 8);
UPDATE entity_costs_daily SET
    cost_by_service = pg_temp.costguard_round_costs(cost_by_service),
    cost_by_category = pg_temp.costguard_round_costs(cost_by_category);

ALTER TABLE cost_global_daily
    ALTER COLUMN cost_usd TYPE numeric(18, 8) USING round(cost_usd, 8),
    ALTER COLUMN unpriced_cost_usd TYPE numeric(18, 8) USING round(unpriced_cost_usd, 8);
UPDATE cost_global_daily SET
    tier_breakdown_json = pg_temp.costguard_round_figures(tier_breakdown_json),
    cost_by_service_json = pg_temp.costguard_round_costs(cost_by_service_json),
    unpriced_json = pg_temp.costguard_round_figures(unpriced_json);

ALTER TABLE cost_user_daily ALTER COLUMN cost_usd TYPE numeric(18, 8) USING round(cost_usd, 8);

DROP FUNCTION pg_temp.costguard_round_figures(jsonb);
DROP FUNCTION pg_temp.costguard_round_costs(jsonb);
