-- A version for each date of cost_user_daily, and which users' costs each version changed,
-- written in the same transaction as any write to that date's rows, whoever writes them (the
-- rollup, the seed's own code, SQL by hand). Each gateway holds the dates' per-user costs in
-- memory to rank the top users (costguard.gateway.user_days); a read compares the versions it
-- sees in its snapshot with those of the days it holds, so it never ranks on a day that
-- changed after it was loaded, and it patches a held day with the users changed since.
-- Versions come from one sequence that is never reset: a version is never seen twice, not
-- even after the table is emptied and written again. A date without a version has no rows.
CREATE SEQUENCE cost_user_day_version_seq;

CREATE TABLE cost_user_day_versions (
    date    date PRIMARY KEY,
    version bigint NOT NULL
);

-- One row per statement and date whose rows it added, removed or gave another cost: the
-- version it set, the one before (NULL: none), and the users (NULL: more than 5,000, so
-- the day is loaded anew). Kept 15 minutes.
CREATE TABLE cost_user_day_changes (
    date      date NOT NULL,
    version   bigint NOT NULL,
    previous  bigint,
    users     text[],
    logged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (date, version)
);

INSERT INTO cost_user_day_versions (date, version)
SELECT date, nextval('cost_user_day_version_seq')
FROM (SELECT DISTINCT date FROM cost_user_daily ORDER BY date) AS d;

-- The users whose row of a date the statement changed for the ranking (added, removed, or
-- another cost: tiers and counts are read from the table itself) are found from its
-- transition tables. Each such date is locked in date order, gets its next version (drawn
-- under the lock, so a date's versions grow in commit order) and a change row, and NOTIFY
-- costguard_user_days (the date; '' for every date) is delivered at commit.
CREATE FUNCTION costguard_user_days_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    dates date[];
    users text[];
    changed record;
    before bigint;
    after bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM cost_user_day_versions;
        DELETE FROM cost_user_day_changes;
        PERFORM pg_notify('costguard_user_days', '');
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT array_agg(date), array_agg(user_id) INTO dates, users FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(date), array_agg(user_id) INTO dates, users FROM old_rows;
    ELSE
        SELECT array_agg(coalesce(n.date, o.date)), array_agg(coalesce(n.user_id, o.user_id))
        INTO dates, users
        FROM new_rows n FULL JOIN old_rows o ON o.user_id = n.user_id AND o.date = n.date
        WHERE n.user_id IS NULL OR o.user_id IS NULL OR n.cost_usd IS DISTINCT FROM o.cost_usd;
    END IF;
    FOR changed IN
        SELECT d AS date, CASE WHEN count(*) <= 5000 THEN array_agg(DISTINCT u) END AS users
        FROM unnest(dates, users) AS t(d, u) GROUP BY d ORDER BY d
    LOOP
        INSERT INTO cost_user_day_versions (date, version) VALUES (changed.date, 0)
        ON CONFLICT (date) DO NOTHING;
        SELECT version INTO before FROM cost_user_day_versions
        WHERE date = changed.date FOR UPDATE;
        after := nextval('cost_user_day_version_seq');
        UPDATE cost_user_day_versions SET version = after WHERE date = changed.date;
        DELETE FROM cost_user_day_changes
        WHERE date = changed.date AND logged_at < now() - interval '15 minutes';
        INSERT INTO cost_user_day_changes (date, version, previous, users)
        VALUES (changed.date, after, nullif(before, 0), changed.users);
        PERFORM pg_notify('costguard_user_days', changed.date::text);
    END LOOP;
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
