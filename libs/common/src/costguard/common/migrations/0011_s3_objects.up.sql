-- S3 storage priced by what is held. One row per stored s3_put, s3_copy or s3_delete cost
-- event that names an object: a non-empty string metadata.s3_key of at most 1,024 bytes
-- (S3's limit) in metadata.bucket ('' when the event names none); a delete with no s3_key
-- names each string of metadata.keys, one row per key, key_index its position in the list.
-- A row holds size_bytes (0 for a delete) from stored_at (the event's created_at) to
-- ended_at: the stored_at of the next row of the same bucket and key, in (stored_at,
-- event_id, key_index) order, or NULL while it is the last one (the object is still held).
-- costguard.common.storage keeps the rows as events arrive, in any order; the rollup
-- prices each day's overlap. No foreign key to cost_events: retention deletes old events,
-- while an object they stored may still be held.
CREATE TABLE s3_objects (
    event_id    uuid NOT NULL,
    key_index   integer NOT NULL DEFAULT 0,
    bucket      text NOT NULL,
    s3_key      text NOT NULL,
    size_bytes  numeric NOT NULL,
    stored_at   timestamptz NOT NULL,
    ended_at    timestamptz,
    user_id     varchar(64),
    tier        varchar(32),
    episode_id  varchar(64),
    podcast_id  varchar(64),
    CONSTRAINT s3_objects_pkey PRIMARY KEY (event_id, key_index),
    CONSTRAINT s3_objects_size_bytes CHECK (size_bytes >= 0),
    CONSTRAINT s3_objects_lifetime CHECK (ended_at >= stored_at)
);
-- The rows of one bucket and key, to find each one's successor.
CREATE INDEX s3_objects_key_idx ON s3_objects (bucket, s3_key, stored_at);
-- The rows held during a day [start, end): stored_at < end AND (ended_at IS NULL OR
-- ended_at > start), one index per arm of the OR. Deletes hold nothing and are left out.
CREATE INDEX s3_objects_live_idx ON s3_objects (stored_at)
    WHERE ended_at IS NULL AND size_bytes > 0;
CREATE INDEX s3_objects_ended_idx ON s3_objects (ended_at, stored_at)
    WHERE ended_at IS NOT NULL AND size_bytes > 0;

-- The objects of the events already stored, read as costguard.common.storage's
-- INSERT_OBJECTS reads them.
INSERT INTO s3_objects (event_id, key_index, bucket, s3_key, size_bytes, stored_at, user_id,
                        tier, episode_id, podcast_id)
SELECT e.event_id, k.key_index, b.bucket, k.s3_key,
       CASE WHEN e.service = 's3_delete' THEN 0
            WHEN jsonb_typeof(e.metadata -> 'size_bytes') = 'number'
            THEN GREATEST((e.metadata ->> 'size_bytes')::numeric, 0)
            WHEN jsonb_typeof(e.metadata -> 'file_size_mb') = 'number'
            THEN GREATEST((e.metadata ->> 'file_size_mb')::numeric, 0) * 1048576
            ELSE 0 END,
       e.created_at, e.user_id, e.tier, e.episode_id, e.podcast_id
FROM cost_events e
CROSS JOIN LATERAL (
    SELECT CASE WHEN jsonb_typeof(e.metadata -> 'bucket') = 'string'
                THEN e.metadata ->> 'bucket' ELSE '' END AS bucket,
           coalesce(jsonb_typeof(e.metadata -> 's3_key') = 'string'
                    AND e.metadata ->> 's3_key' <> '', false) AS one_key
) b
CROSS JOIN LATERAL (
    SELECT 0 AS key_index, e.metadata ->> 's3_key' AS s3_key WHERE b.one_key
    UNION ALL
    SELECT (listed.n - 1)::integer, listed.value #>> '{}'
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.metadata -> 'keys') = 'array'
                                   THEN e.metadata -> 'keys' ELSE '[]' END)
         WITH ORDINALITY AS listed (value, n)
    WHERE e.service = 's3_delete' AND NOT b.one_key AND jsonb_typeof(listed.value) = 'string'
) k
WHERE e.event_type = 's3_operation' AND e.service IN ('s3_put', 's3_copy', 's3_delete')
  AND k.s3_key <> '' AND octet_length(k.s3_key) <= 1024 AND octet_length(b.bucket) <= 255;

UPDATE s3_objects o SET ended_at = n.next_at
FROM (
    SELECT event_id, key_index,
           lead(stored_at) OVER (PARTITION BY bucket, s3_key
                                 ORDER BY stored_at, event_id, key_index) AS next_at
    FROM s3_objects
) n
WHERE o.event_id = n.event_id AND o.key_index = n.key_index AND n.next_at IS NOT NULL;
