-- Back to one plain table each, with its keys, indexes and rows.
CREATE FUNCTION costguard_unpartition_events(tbl text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old text := tbl || '_partitioned';
    idx record;
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, old);
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   tbl, old);
    EXECUTE format('ALTER SEQUENCE %I OWNED BY %I.id', tbl || '_id_seq', tbl);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id), '
                   'ADD CONSTRAINT %I UNIQUE (event_id)', tbl, tbl || '_pkey',
                   tbl || '_event_id_key');
    FOR idx IN
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = old
    LOOP
        EXECUTE format('DROP INDEX %I', idx.indexname);
        EXECUTE replace(idx.indexdef, format(' ON ONLY %I.%I ', current_schema(), old),
                        format(' ON %I ', tbl));
    END LOOP;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', tbl, old);
    EXECUTE format('DROP TABLE %I', old);
END;
$$;

SELECT costguard_unpartition_events('telemetry_job_events');
SELECT costguard_unpartition_events('telemetry_llm_events');
SELECT costguard_unpartition_events('cost_events');
DROP FUNCTION costguard_unpartition_events(text);
DROP FUNCTION costguard_add_event_partition(text, text, timestamptz, timestamptz);
DROP TABLE telemetry_unstamped_events;
