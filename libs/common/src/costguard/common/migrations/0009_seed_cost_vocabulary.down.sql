-- Put the rows 0009 rewrote back into the first vocabulary, from metadata.migrated_from:
-- their event type, service, unit and quantity, the metadata keys 0009 added removed and the
-- values it replaced restored. Rows recorded in the new vocabulary stay as they are (the
-- code of before 0009 lists them as unpriced).
UPDATE cost_events SET
    event_type = metadata -> 'migrated_from' ->> 'event_type',
    service = metadata -> 'migrated_from' ->> 'service',
    unit = metadata -> 'migrated_from' ->> 'unit',
    quantity = (metadata -> 'migrated_from' ->> 'quantity')::numeric,
    metadata = (metadata
                - ARRAY(SELECT jsonb_array_elements_text(metadata -> 'migrated_from' -> 'added'))
                - 'migrated_from')
               || (metadata -> 'migrated_from' -> 'replaced')
WHERE jsonb_typeof(metadata -> 'migrated_from') = 'object';
