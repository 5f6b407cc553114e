-- Issue 17: a user's page reads their cost events of a range (by service, and the newest
-- ones). The job and LLM event tables have (user_id, created_at) since the seed; the cost
-- events had none, so each such read scanned every cost event of the range. Partial: cost
-- events without a user (the S3 storage, shared services) are never read by user.
CREATE INDEX cost_events_user_created_idx ON cost_events (user_id, created_at)
    WHERE user_id IS NOT NULL;
