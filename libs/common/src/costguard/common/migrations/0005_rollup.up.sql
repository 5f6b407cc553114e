-- Issue 5: what the rollup needs. Price sheets make a rollup reproducible (every
-- aggregate row names the sheet it was priced with); dirty dates let late events
-- re-roll their day; runs say what happened; per-entity costs per day add up to the
-- entity totals.

CREATE TABLE price_sheets (
    id          bigserial PRIMARY KEY,
    digest      varchar(80) NOT NULL UNIQUE,
    sheet       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rollup_dirty_dates (
    date       date PRIMARY KEY,
    marked_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rollup_runs (
    id              bigserial PRIMARY KEY,
    trigger         varchar(16) NOT NULL,
    from_date       date NOT NULL,
    to_date         date NOT NULL,
    status          varchar(16) NOT NULL DEFAULT 'running',
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    events          bigint,
    cost_usd        numeric(18, 8),
    error           text,
    CONSTRAINT rollup_runs_status CHECK (status IN ('running', 'succeeded', 'failed'))
);
CREATE INDEX rollup_runs_started_idx ON rollup_runs (started_at DESC);

ALTER TABLE cost_user_daily ADD COLUMN price_sheet_id bigint REFERENCES price_sheets (id);
ALTER TABLE cost_global_daily
    ADD COLUMN price_sheet_id bigint REFERENCES price_sheets (id),
    ADD COLUMN events bigint NOT NULL DEFAULT 0,
    ADD COLUMN unpriced_cost_usd numeric(18, 8) NOT NULL DEFAULT 0,
    ADD COLUMN unpriced_json jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN cost_by_service_json jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE cost_monthly_summary ADD COLUMN days_rolled integer NOT NULL DEFAULT 0;

CREATE TABLE entity_costs_daily (
    entity_type       varchar(16) NOT NULL,
    entity_id         varchar(64) NOT NULL,
    date              date NOT NULL,
    podcast_id        varchar(64),
    cost_usd          numeric(18, 8) NOT NULL DEFAULT 0,
    cost_by_service   jsonb NOT NULL DEFAULT '{}'::jsonb,
    cost_by_category  jsonb NOT NULL DEFAULT '{}'::jsonb,
    usage_metrics     jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_count       bigint NOT NULL DEFAULT 0,
    price_sheet_id    bigint REFERENCES price_sheets (id),
    PRIMARY KEY (entity_type, entity_id, date)
);
CREATE INDEX entity_costs_daily_date_idx ON entity_costs_daily (date);

CREATE INDEX telemetry_llm_events_podcast_idx ON telemetry_llm_events (podcast_id)
    WHERE podcast_id IS NOT NULL;
CREATE INDEX telemetry_job_events_podcast_idx ON telemetry_job_events (podcast_id)
    WHERE podcast_id IS NOT NULL;
