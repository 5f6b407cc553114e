-- Issue 17: what the analytics read, kept small enough to answer any range at once.
--
-- cost_breakdown_daily: each day's cost, tokens and calls by model, service and domain,
-- kept by the rollup beside cost_global_daily (a full rollup of a day rebuilds its rows, a
-- near-live refresh adds the new events' sums to them). Keys:
--   model    'provider/model' of LLM calls (telemetry_llm_events), and of cost events in
--            the ai category that name a model (metadata.model: 'service/model');
--   service  the service an event is billed under: 'compute' for jobs, the provider for LLM
--            calls, the cost event's service;
--   domain   the job's or LLM call's domain (cost events have none).
-- What a dimension does not cover (a day's cost less the sum of its rows: jobs under model,
-- cost events under domain, the S3 storage held) is the reader's to show as the rest, so
-- that every breakdown adds up to cost_global_daily's cost to the last digit.
CREATE TABLE cost_breakdown_daily (
    date        date NOT NULL,
    dimension   varchar(16) NOT NULL,
    key         varchar(200) NOT NULL,
    cost_usd    numeric NOT NULL DEFAULT 0,
    tokens_in   bigint NOT NULL DEFAULT 0,
    tokens_out  bigint NOT NULL DEFAULT 0,
    calls       bigint NOT NULL DEFAULT 0,
    events      bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (date, dimension, key),
    CONSTRAINT cost_breakdown_daily_dimension CHECK (dimension IN ('model', 'service', 'domain'))
);

-- The throttle's decisions, counted in memory and added here every few seconds (and when
-- the throttle stops): by the reporting time zone's day, tier and action, and per user.
-- action: ALLOW, DOWNGRADE, DEFER or DENY.
CREATE TABLE throttle_decisions_daily (
    date        date NOT NULL,
    tier        varchar(32) NOT NULL,
    action      varchar(16) NOT NULL,
    decisions   bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (date, tier, action)
);

CREATE TABLE throttle_user_decisions_daily (
    user_id     varchar(64) NOT NULL,
    date        date NOT NULL,
    tier        varchar(32) NOT NULL,
    action      varchar(16) NOT NULL,
    decisions   bigint NOT NULL,
    last_reason text,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (user_id, date, tier, action)
);
CREATE INDEX throttle_user_decisions_daily_date_idx ON throttle_user_decisions_daily (date);

-- A cost an OpenTelemetry span reports for itself (gen_ai.usage.cost and the like), kept
-- beside costguard's own price (cost_usd) for comparison, never instead of it; NULL when
-- the event did not report one. source: how the event arrived ('sdk' or 'otlp').
ALTER TABLE telemetry_llm_events
    ADD COLUMN reported_cost_usd numeric,
    ADD COLUMN source text NOT NULL DEFAULT 'sdk'
        CONSTRAINT telemetry_llm_events_source CHECK (source IN ('sdk', 'otlp'));
