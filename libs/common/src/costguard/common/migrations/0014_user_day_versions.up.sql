-- A version for each date of cost_user_daily, changed in the same transaction as any write
-- to that date's rows, whoever writes them (the rollup, the seed's own code, SQL by hand).
-- Each gateway holds the dates' per-user costs in memory to rank the top users
-- (costguard.gateway.user_days); a read compares the versions it sees in its snapshot with
-- those of the days it holds, so it never ranks on a day that changed after it was loaded.
-- Versions come from one sequence that is never reset: a version is never seen twice, not
-- even after the table is emptied and written again. A date without a version has no rows.
CREATE SEQUENCE cost_user_day_version_seq;

CREATE TABLE cost_user_day_versions (
    date    date PRIMARY KEY,
    version bigint NOT NULL
);

INSERT INTO cost_user_day_versions (date, version)
SELECT date, nextval('cost_user_day_version_seq')
FROM (SELECT DISTINCT date FROM cost_user_daily ORDER BY date) AS d;

-- The dates one statement wrote (from its transition tables) get new versions, locked in
-- date order. On a conflict the version is drawn after the row lock is held, so a date's
-- versions grow in commit order. NOTIFY costguard_user_days (the date; '' for every date)
-- is delivered at commit, and the gateways reload what changed.
CREATE FUNCTION costguard_user_days_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    dates date[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM cost_user_day_versions;
        PERFORM pg_notify('costguard_user_days', '');
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        dates := ARRAY(SELECT DISTINCT date FROM new_rows ORDER BY 1);
    ELSIF TG_OP = 'UPDATE' THEN
        dates := ARRAY(SELECT date FROM new_rows UNION SELECT date FROM old_rows ORDER BY 1);
    ELSE
        dates := ARRAY(SELECT DISTINCT date FROM old_rows ORDER BY 1);
    END IF;
    INSERT INTO cost_user_day_versions AS v (date, version)
    SELECT d, nextval('cost_user_day_version_seq') FROM unnest(dates) AS d
    ON CONFLICT (date) DO UPDATE SET version = nextval('cost_user_day_version_seq');
    PERFORM pg_notify('costguard_user_days', d::text) FROM unnest(dates) AS d;
    RETURN NULL;
END
$$;

CREATE TRIGGER cost_user_daily_versions_insert AFTER INSERT ON cost_user_daily
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION costguard_user_days_changed();
CREATE TRIGGER cost_user_daily_versions_update AFTER UPDATE ON cost_user_daily
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION costguard_user_days_changed();
CREATE TRIGGER cost_user_daily_versions_delete AFTER DELETE ON cost_user_daily
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION costguard_user_days_changed();
CREATE TRIGGER cost_user_daily_versions_truncate AFTER TRUNCATE ON cost_user_daily
    FOR EACH STATEMENT EXECUTE FUNCTION costguard_user_days_changed();
