-- The seed's five tables (DESIGN.md "Postgres"), with the additions the design allows:
-- a client-made event_id (unique) on event tables, cached/reasoning token columns and
-- entity attribution. Column widths bound what telemetry accepts (issue 3).

CREATE TABLE telemetry_job_events (
    id              bigserial PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    job_name        varchar(128) NOT NULL,
    user_id         varchar(64) NOT NULL,
    tier            varchar(32) NOT NULL,
    domain          varchar(64) NOT NULL DEFAULT 'default',
    job_type        varchar(64),
    queued_at       timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    duration_ms     bigint NOT NULL DEFAULT 0,
    queue_wait_ms   bigint NOT NULL DEFAULT 0,
    cpu_ms          bigint NOT NULL DEFAULT 0,
    peak_mem_mb     double precision,
    rows_read       bigint NOT NULL DEFAULT 0,
    rows_written    bigint NOT NULL DEFAULT 0,
    attempt         integer NOT NULL DEFAULT 1,
    success         boolean NOT NULL,
    error_code      varchar(64),
    episode_id      varchar(64),
    podcast_id      varchar(64),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telemetry_job_events_created_at_idx ON telemetry_job_events (created_at);
CREATE INDEX telemetry_job_events_user_created_idx ON telemetry_job_events (user_id, created_at);
CREATE INDEX telemetry_job_events_started_at_idx ON telemetry_job_events (started_at);
CREATE INDEX telemetry_job_events_episode_idx ON telemetry_job_events (episode_id)
    WHERE episode_id IS NOT NULL;

CREATE TABLE telemetry_llm_events (
    id                  bigserial PRIMARY KEY,
    event_id            uuid NOT NULL UNIQUE,
    user_id             varchar(64) NOT NULL,
    tier                varchar(32) NOT NULL,
    domain              varchar(64) NOT NULL DEFAULT 'default',
    job_name            varchar(128),
    provider            varchar(32) NOT NULL DEFAULT 'openai',
    model               varchar(128) NOT NULL,
    operation           varchar(32) NOT NULL DEFAULT 'chat.completions',
    input_tokens        bigint NOT NULL DEFAULT 0,
    cached_input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    reasoning_tokens    bigint NOT NULL DEFAULT 0,
    usage_reported      boolean NOT NULL DEFAULT true,
    latency_ms          bigint NOT NULL DEFAULT 0,
    cache_hit           boolean NOT NULL DEFAULT false,
    insight_key         varchar(256),
    success             boolean NOT NULL DEFAULT true,
    error_code          varchar(64),
    episode_id          varchar(64),
    podcast_id          varchar(64),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT telemetry_llm_events_cached_le_input CHECK (cached_input_tokens <= input_tokens),
    CONSTRAINT telemetry_llm_events_reasoning_le_output CHECK (reasoning_tokens <= output_tokens)
);
CREATE INDEX telemetry_llm_events_created_at_idx ON telemetry_llm_events (created_at);
CREATE INDEX telemetry_llm_events_user_created_idx ON telemetry_llm_events (user_id, created_at);
CREATE INDEX telemetry_llm_events_model_idx ON telemetry_llm_events (model);
CREATE INDEX telemetry_llm_events_episode_idx ON telemetry_llm_events (episode_id)
    WHERE episode_id IS NOT NULL;

CREATE TABLE cost_user_daily (
    user_id     varchar(64) NOT NULL,
    date        date NOT NULL,
    tier        varchar(32) NOT NULL,
    jobs        bigint NOT NULL DEFAULT 0,
    ai_calls    bigint NOT NULL DEFAULT 0,
    cpu_ms      bigint NOT NULL DEFAULT 0,
    tokens_in   bigint NOT NULL DEFAULT 0,
    tokens_out  bigint NOT NULL DEFAULT 0,
    cost_usd    numeric(18, 8) NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, date)
);
CREATE INDEX cost_user_daily_date_cost_idx ON cost_user_daily (date, cost_usd DESC);

CREATE TABLE cost_global_daily (
    date                date PRIMARY KEY,
    jobs                bigint NOT NULL DEFAULT 0,
    ai_calls            bigint NOT NULL DEFAULT 0,
    cpu_ms              bigint NOT NULL DEFAULT 0,
    tokens_in           bigint NOT NULL DEFAULT 0,
    tokens_out          bigint NOT NULL DEFAULT 0,
    cost_usd            numeric(18, 8) NOT NULL DEFAULT 0,
    tier_breakdown_json jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cost_budgets (
    id                        bigserial PRIMARY KEY,
    apply_scope               varchar(96) NOT NULL UNIQUE,
    cpu_ms_per_day            bigint,
    jobs_per_day              bigint,
    llm_input_tokens_per_day  bigint,
    llm_output_tokens_per_day bigint,
    enabled                   boolean NOT NULL DEFAULT true,
    updated_by                varchar(128),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cost_budgets_caps_non_negative CHECK (
        coalesce(cpu_ms_per_day, 0) >= 0 AND coalesce(jobs_per_day, 0) >= 0
        AND coalesce(llm_input_tokens_per_day, 0) >= 0
        AND coalesce(llm_output_tokens_per_day, 0) >= 0
    )
);
