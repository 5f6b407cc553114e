DROP FUNCTION costguard_jsonb_sum(jsonb, jsonb);
DROP TABLE rollup_day_watermarks;
DROP TABLE rollup_day_groups;
