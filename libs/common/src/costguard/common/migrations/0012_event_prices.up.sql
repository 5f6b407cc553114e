-- One price per event, set once: the telemetry service prices each event as it stores it,
-- with the price sheet in force for the event's local day, and the live counters, the
-- throttle, the rollup and the gateway all count that stored price. Rows stored before
-- this migration (and rows the seed's own code writes without a price) keep NULL and are
-- priced by the next rollup of their day, with that day's sheet.

-- The sheet in force for each local day. Telemetry adds models to it as they first appear
-- (the rates it already has never change); a deliberate reprice replaces it.
-- reprice_pending: a reprice put this sheet in force and the day's events are still to be
-- priced again with it (the next rollup of the day does it, if the reprice's did not finish).
CREATE TABLE price_sheet_days (
    date             date PRIMARY KEY,
    price_sheet_id   bigint NOT NULL REFERENCES price_sheets (id),
    reprice_pending  boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO price_sheet_days (date, price_sheet_id)
SELECT date, price_sheet_id FROM cost_global_daily WHERE price_sheet_id IS NOT NULL;

-- cost_usd: the event's exact cost (never rounded); price_sheet_id: the sheet it came from
-- (a price_sheets id; no foreign key: checking one per row halved ingest's throughput, and
-- a sheet is never deleted).
ALTER TABLE telemetry_job_events
    ADD COLUMN cost_usd numeric,
    ADD COLUMN price_sheet_id bigint;
-- unpriced_reason: why the price is not the model's own (a model the price library does not
-- know, billed at the seed constants; a call priced $0 with no usage to price), else NULL.
ALTER TABLE telemetry_llm_events
    ADD COLUMN cost_usd numeric,
    ADD COLUMN price_sheet_id bigint,
    ADD COLUMN unpriced_reason text;
-- cost_category: ai, aws or unpriced; an unpriced event costs 0 and says why, under its item.
ALTER TABLE cost_events
    ADD COLUMN cost_usd numeric,
    ADD COLUMN price_sheet_id bigint,
    ADD COLUMN cost_category text,
    ADD COLUMN unpriced_reason text,
    ADD COLUMN unpriced_item text;

-- Calls whose usage never arrived are priced at an estimate: how many, and their cost.
ALTER TABLE cost_global_daily
    ADD COLUMN estimated_cost_usd numeric NOT NULL DEFAULT 0,
    ADD COLUMN estimated_events bigint NOT NULL DEFAULT 0;

-- The rows a rollup still has to price: few, so the indexes stay small.
CREATE INDEX telemetry_job_events_unpriced_idx
    ON telemetry_job_events ((coalesce(started_at, created_at))) WHERE cost_usd IS NULL;
CREATE INDEX telemetry_llm_events_unpriced_idx
    ON telemetry_llm_events (created_at) WHERE cost_usd IS NULL;
CREATE INDEX cost_events_unpriced_idx ON cost_events (created_at) WHERE cost_usd IS NULL;

-- A user's tier for a day is the tier of their latest event that day (ties: the greater
-- tier name). An event's vote is its instant in microseconds since 1970; the live counters,
-- their rebuild and the rollup all compare these same numbers.
CREATE FUNCTION costguard_tier_vote(at timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (extract(epoch FROM at) * 1000000)::bigint;
-- costguard_job_cost_nusd and costguard_llm_cost_nusd (0003) are no longer called: the live
-- counters add up the stored cost.
