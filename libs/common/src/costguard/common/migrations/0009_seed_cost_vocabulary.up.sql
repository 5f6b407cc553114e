-- Rewrite the cost events recorded in costguard's first vocabulary (s3.put_object/s3/request,
-- ses.send_email/ses/email, lambda.invoke/lambda/gb_second, ...) into the podcast app's
-- (docs/cost-events.md), with the metadata keys its pricing reads, so that re-rolling a date
-- recorded before this migration prices it exactly as before.
--
-- Only a row whose event type, service and unit all match a rate of the old vocabulary is
-- rewritten (any other row was unpriced and stays as it is, unpriced still). Its metadata
-- gains the new keys; none is removed. What it was is kept in metadata.migrated_from: the old
-- event_type, service, unit and quantity, the keys added, and the old values of keys it
-- replaced, which is what the down migration restores. Aggregates already rolled up are not
-- touched (their costs are unchanged; a re-run of a date shows the new service names).
--
-- Per old rate:
-- - s3.*: s3_operation with service s3_put|s3_copy|s3_list|s3_get|s3_head|s3_delete,
--   unit requests; operation (PutObject, ...), s3_key (from key) and, when size_bytes is a
--   number, file_size_mb (from size_mb, else computed). size_bytes stays the size priced; an
--   upload without a numeric size_bytes but with a file_size_mb of its own gets size_bytes 0
--   (it was charged no storage, and is not now).
-- - ses.send_*: ses_email/ses/emails, quantity unchanged (recipients accepted); operation,
--   success_count, and batch_size and failed_count when no destination failed.
-- - sqs.send_message(_batch): sqs_message/sqs/messages; operation, message_count. The old
--   rate billed an event max(1, ceil(body_bytes / 65536)) requests whatever its message
--   count, which is what a batch of up to 10 messages is billed now: so a send_message event
--   of other than one message is rewritten as a SendMessageBatch (exact up to 10 messages,
--   the most a batch holds; the SDK never wrote more).
-- - lambda.request: lambda_invocation/lambda/requests, quantity 1, duration_seconds 0 (the
--   duration was billed on the invoke row); function_name from function.
-- - lambda.invoke (quantity = GB-seconds): lambda_invocation/lambda/requests of quantity 0
--   (its invocation is the request row), billed quantity GB-seconds exactly, as
--   duration_seconds = the old quantity at memory_mb = 1024; the old memory_mb is kept
--   under migrated_from.replaced, the billed_duration_ms the SDK wrote stays.
WITH mapping (old_type, old_service, old_unit, new_type, new_service, new_unit, operation) AS (
    VALUES
        ('s3.put_object', 's3', 'request', 's3_operation', 's3_put', 'requests', 'PutObject'),
        ('s3.copy_object', 's3', 'request', 's3_operation', 's3_copy', 'requests', 'CopyObject'),
        ('s3.list_objects', 's3', 'request', 's3_operation', 's3_list', 'requests', 'ListObjects'),
        ('s3.list_objects_v2', 's3', 'request', 's3_operation', 's3_list', 'requests',
         'ListObjectsV2'),
        ('s3.get_object', 's3', 'request', 's3_operation', 's3_get', 'requests', 'GetObject'),
        ('s3.head_object', 's3', 'request', 's3_operation', 's3_head', 'requests', 'HeadObject'),
        ('s3.delete_object', 's3', 'request', 's3_operation', 's3_delete', 'requests',
         'DeleteObject'),
        ('s3.delete_objects', 's3', 'request', 's3_operation', 's3_delete', 'requests',
         'DeleteObjects'),
        ('ses.send_email', 'ses', 'email', 'ses_email', 'ses', 'emails', 'SendEmail'),
        ('ses.send_raw_email', 'ses', 'email', 'ses_email', 'ses', 'emails', 'SendRawEmail'),
        ('ses.send_templated_email', 'ses', 'email', 'ses_email', 'ses', 'emails',
         'SendTemplatedEmail'),
        ('ses.send_bulk_templated_email', 'ses', 'email', 'ses_email', 'ses', 'emails',
         'SendBulkTemplatedEmail'),
        ('ses.send_bulk_email', 'ses', 'email', 'ses_email', 'ses', 'emails', 'SendBulkEmail'),
        ('sqs.send_message', 'sqs', 'message', 'sqs_message', 'sqs', 'messages', 'SendMessage'),
        ('sqs.send_message_batch', 'sqs', 'message', 'sqs_message', 'sqs', 'messages',
         'SendMessageBatch'),
        ('lambda.request', 'lambda', 'request', 'lambda_invocation', 'lambda', 'requests',
         'Invoke'),
        ('lambda.invoke', 'lambda', 'gb_second', 'lambda_invocation', 'lambda', 'requests',
         'Invoke')
),
old AS (
    SELECT e.id, e.event_type, e.service, e.unit, e.quantity, e.metadata, m.old_type,
           m.new_type, m.new_service, m.new_unit,
           jsonb_strip_nulls(CASE m.new_type
               WHEN 's3_operation' THEN jsonb_build_object(
                   'operation', m.operation,
                   's3_key', e.metadata -> 'key',
                   'file_size_mb', CASE WHEN jsonb_typeof(e.metadata -> 'size_bytes') = 'number'
                       THEN coalesce(
                           CASE WHEN jsonb_typeof(e.metadata -> 'size_mb') = 'number'
                                THEN e.metadata -> 'size_mb' END,
                           to_jsonb((e.metadata ->> 'size_bytes')::numeric / 1048576)) END,
                   'size_bytes', CASE WHEN m.new_service IN ('s3_put', 's3_copy')
                       AND coalesce(jsonb_typeof(e.metadata -> 'size_bytes'), '') <> 'number'
                       AND jsonb_typeof(e.metadata -> 'file_size_mb') = 'number'
                       THEN to_jsonb(0) END)
               WHEN 'ses_email' THEN jsonb_build_object(
                   'operation', m.operation,
                   'success_count', e.quantity,
                   'batch_size', CASE WHEN coalesce(CASE
                       WHEN jsonb_typeof(e.metadata -> 'destinations_failed') = 'number'
                       THEN (e.metadata ->> 'destinations_failed')::numeric END, 0) = 0
                       THEN to_jsonb(e.quantity) END,
                   'failed_count', CASE WHEN coalesce(CASE
                       WHEN jsonb_typeof(e.metadata -> 'destinations_failed') = 'number'
                       THEN (e.metadata ->> 'destinations_failed')::numeric END, 0) = 0
                       THEN to_jsonb(0) END)
               WHEN 'sqs_message' THEN jsonb_build_object(
                   'operation', CASE WHEN m.old_type = 'sqs.send_message' AND e.quantity = 1
                                     THEN 'SendMessage' ELSE 'SendMessageBatch' END,
                   'message_count', e.quantity)
               ELSE jsonb_build_object(
                   'operation', m.operation,
                   'function_name', e.metadata -> 'function',
                   'duration_seconds', CASE WHEN m.old_type = 'lambda.invoke'
                                            THEN e.quantity ELSE 0 END,
                   'memory_mb', CASE WHEN m.old_type = 'lambda.invoke' THEN to_jsonb(1024) END)
           END) AS additions
    FROM cost_events e
    JOIN mapping m
        ON m.old_type = e.event_type AND m.old_service = e.service AND m.old_unit = e.unit
)
UPDATE cost_events e SET
    event_type = o.new_type,
    service = o.new_service,
    unit = o.new_unit,
    quantity = CASE WHEN o.old_type = 'lambda.invoke' THEN 0 ELSE o.quantity END,
    metadata = o.metadata || o.additions || jsonb_build_object('migrated_from', jsonb_build_object(
        'event_type', o.event_type,
        'service', o.service,
        'unit', o.unit,
        'quantity', o.quantity,
        'added', coalesce((SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(o.additions) k
                           WHERE NOT o.metadata ? k), '[]'::jsonb),
        'replaced', coalesce((SELECT jsonb_object_agg(k, o.metadata -> k)
                              FROM jsonb_object_keys(o.additions) k WHERE o.metadata ? k),
                             '{}'::jsonb)))
FROM old o
WHERE e.id = o.id;
