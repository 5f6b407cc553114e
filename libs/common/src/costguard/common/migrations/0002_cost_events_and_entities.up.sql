-- Seed two: generic cost events (cloud operations and anything billable), per-entity
-- costs (episode, podcast) and the monthly summary.

CREATE TABLE cost_events (
    id          bigserial PRIMARY KEY,
    event_id    uuid NOT NULL UNIQUE,
    event_type  varchar(64) NOT NULL,
    service     varchar(32) NOT NULL,
    quantity    numeric(24, 6) NOT NULL,
    unit        varchar(32) NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    user_id     varchar(64),
    tier        varchar(32),
    episode_id  varchar(64),
    podcast_id  varchar(64),
    entities    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cost_events_quantity_non_negative CHECK (quantity >= 0)
);
CREATE INDEX cost_events_created_at_idx ON cost_events (created_at);
CREATE INDEX cost_events_episode_idx ON cost_events (episode_id) WHERE episode_id IS NOT NULL;
CREATE INDEX cost_events_podcast_idx ON cost_events (podcast_id) WHERE podcast_id IS NOT NULL;

CREATE TABLE entity_costs (
    entity_type       varchar(16) NOT NULL,
    entity_id         varchar(64) NOT NULL,
    podcast_id        varchar(64),
    total_cost_usd    numeric(18, 8) NOT NULL DEFAULT 0,
    cost_by_service   jsonb NOT NULL DEFAULT '{}'::jsonb,
    cost_by_category  jsonb NOT NULL DEFAULT '{}'::jsonb,
    usage_metrics     jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_count       bigint NOT NULL DEFAULT 0,
    calculated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity_type, entity_id),
    CONSTRAINT entity_costs_type CHECK (entity_type IN ('episode', 'podcast'))
);
CREATE INDEX entity_costs_podcast_idx ON entity_costs (podcast_id, total_cost_usd DESC);

CREATE TABLE cost_monthly_summary (
    year               integer NOT NULL,
    month              integer NOT NULL,
    jobs               bigint NOT NULL DEFAULT 0,
    ai_calls           bigint NOT NULL DEFAULT 0,
    cpu_ms             bigint NOT NULL DEFAULT 0,
    tokens_in          bigint NOT NULL DEFAULT 0,
    tokens_out         bigint NOT NULL DEFAULT 0,
    cost_usd           numeric(18, 8) NOT NULL DEFAULT 0,
    cost_by_service    jsonb NOT NULL DEFAULT '{}'::jsonb,
    podcast_breakdown  jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (year, month),
    CONSTRAINT cost_monthly_summary_month CHECK (month BETWEEN 1 AND 12)
);
