DROP TRIGGER cost_user_daily_versions_truncate ON cost_user_daily;
DROP TRIGGER cost_user_daily_versions_delete ON cost_user_daily;
DROP TRIGGER cost_user_daily_versions_update ON cost_user_daily;
DROP TRIGGER cost_user_daily_versions_insert ON cost_user_daily;
DROP FUNCTION costguard_user_days_changed();
DROP TABLE cost_user_day_changes;
DROP TABLE cost_user_day_versions;
DROP SEQUENCE cost_user_day_version_seq;
