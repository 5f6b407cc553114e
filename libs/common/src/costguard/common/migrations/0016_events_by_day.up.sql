-- The raw event tables become partitioned by day (docs/schema.md "Raw events by day"), on
-- the instant the rollup counts an event on: a job's start, else its creation; an LLM or
-- cost event's creation. A day's rollup then reads one partition, and retention drops a
-- whole day instead of deleting its rows. The rollup service creates each local day's
-- partition ahead of time (costguard.common.partitions); an event of a day without one
-- lands in the table's default partition, and moves to its day's when that is created.
--
-- Postgres enforces a unique index of a partitioned table only when it holds the whole
-- partition key, so each partition has its own primary key (id) and unique event_id: a
-- repeat of an event is caught because it counts on the same day, in the same partition.
-- Ids stay unique across partitions because they come from the table's one sequence.

-- Creates the partition ``part`` of ``tbl`` for the instants [lo, hi), with its own keys,
-- and moves in the rows of the range the default partition holds. The table is locked
-- first, as ingest locks it (the table, then a partition), so the two never deadlock.
CREATE FUNCTION costguard_add_event_partition(tbl text, part text, lo timestamptz,
                                              hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    key text := substring(pg_get_partkeydef(tbl::regclass) FROM '^RANGE \((.*)\)$');
    moved bigint;
BEGIN
    EXECUTE format('LOCK TABLE ONLY %I, ONLY %I IN ACCESS EXCLUSIVE MODE', tbl, tbl || '_default');
    EXECUTE format(
        'CREATE TEMP TABLE costguard_moving ON COMMIT DROP AS '
        'WITH d AS (DELETE FROM %I WHERE %s >= %L AND %s < %L RETURNING *) SELECT * FROM d',
        tbl || '_default', key, lo, key, hi);
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   part, tbl, lo, hi);
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id), ADD UNIQUE (event_id)', part);
    EXECUTE format('INSERT INTO %I SELECT * FROM costguard_moving', tbl);
    DROP TABLE costguard_moving;
    RETURN moved;
END;
$$;

-- Rebuilds ``tbl`` as a table partitioned on ``key``, with the same columns, defaults,
-- checks, sequence and indexes (its keys on each partition), and its rows moved in.
CREATE FUNCTION costguard_partition_events(tbl text, key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old text := tbl || '_unpartitioned';
    idx record;
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, old);
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                   'PARTITION BY RANGE (%s)', tbl, old, key);
    EXECUTE format('ALTER SEQUENCE %I OWNED BY %I.id', tbl || '_id_seq', tbl);
    FOR idx IN
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = old
          AND i.indexname NOT IN (tbl || '_pkey', tbl || '_event_id_key')
    LOOP
        EXECUTE format('DROP INDEX %I', idx.indexname);
        EXECUTE replace(idx.indexdef, format(' ON %I.%I ', current_schema(), old),
                        format(' ON %I ', tbl));
    END LOOP;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id), ADD UNIQUE (event_id)',
                   tbl || '_default');
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', tbl, old);
    EXECUTE format('DROP TABLE %I', old);
END;
$$;

SELECT costguard_partition_events('telemetry_job_events', 'coalesce(started_at, created_at)');
SELECT costguard_partition_events('telemetry_llm_events', 'created_at');
SELECT costguard_partition_events('cost_events', 'created_at');
DROP FUNCTION costguard_partition_events(text, text);

-- Events that came without their own time (a job with neither started_at nor created_at,
-- an LLM or cost event without created_at) count on the day they arrived: a repeat sent
-- on another day would land in another partition, so ingest stores such an event only if
-- its id is new here.
CREATE TABLE telemetry_unstamped_events (
    kind        varchar(8) NOT NULL,
    event_id    uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, event_id)
);
CREATE INDEX telemetry_unstamped_events_received_idx ON telemetry_unstamped_events (received_at);
