"""The seed's schema, column by column: the contract that ``test_schema`` holds migrations to.

The five cost-control tables plus the podcast cost-tracking tables (README, "Database and
migrations"). Frozen from the first two migrations after review against the design, and
kept by hand from now on: a migration that changes a listed column's type, nullability or
default, a key or an index fails the test. Later migrations may add columns, indexes and
constraints (the design allows additions, not removals).

Index definitions are ``pg_indexes.indexdef`` after ``USING``, prefixed by ``UNIQUE``
for unique indexes; ``keys`` are the primary key and unique constraints.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    indexes: dict[str, str]
    keys: dict[str, str]


SEED_TABLES = {
    "telemetry_job_events": Table(
        columns=[
            Column(
                "id",
                "bigint",
                not_null=True,
                default="nextval('telemetry_job_events_id_seq'::regclass)",
            ),
            Column("event_id", "uuid", not_null=True, default=None),
            Column("job_name", "character varying(128)", not_null=True, default=None),
            Column("user_id", "character varying(64)", not_null=True, default=None),
            Column("tier", "character varying(32)", not_null=True, default=None),
            Column(
                "domain",
                "character varying(64)",
                not_null=True,
                default="'default'::character varying",
            ),
            Column("job_type", "character varying(64)", not_null=False, default=None),
            Column("queued_at", "timestamp with time zone", not_null=False, default=None),
            Column("started_at", "timestamp with time zone", not_null=False, default=None),
            Column("finished_at", "timestamp with time zone", not_null=False, default=None),
            Column("duration_ms", "bigint", not_null=True, default="0"),
            Column("queue_wait_ms", "bigint", not_null=True, default="0"),
            Column("cpu_ms", "bigint", not_null=True, default="0"),
            Column("peak_mem_mb", "double precision", not_null=False, default=None),
            Column("rows_read", "bigint", not_null=True, default="0"),
            Column("rows_written", "bigint", not_null=True, default="0"),
            Column("attempt", "integer", not_null=True, default="1"),
            Column("success", "boolean", not_null=True, default=None),
            Column("error_code", "character varying(64)", not_null=False, default=None),
            Column("episode_id", "character varying(64)", not_null=False, default=None),
            Column("podcast_id", "character varying(64)", not_null=False, default=None),
            Column("created_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "telemetry_job_events_created_at_idx": "btree (created_at)",
            "telemetry_job_events_episode_idx": "btree (episode_id) WHERE (episode_id IS NOT NULL)",
            "telemetry_job_events_event_id_key": "UNIQUE btree (event_id)",
            "telemetry_job_events_pkey": "UNIQUE btree (id)",
            "telemetry_job_events_started_at_idx": "btree (started_at)",
            "telemetry_job_events_user_created_idx": "btree (user_id, created_at)",
        },
        keys={
            "telemetry_job_events_event_id_key": "UNIQUE (event_id)",
            "telemetry_job_events_pkey": "PRIMARY KEY (id)",
        },
    ),
    "telemetry_llm_events": Table(
        columns=[
            Column(
                "id",
                "bigint",
                not_null=True,
                default="nextval('telemetry_llm_events_id_seq'::regclass)",
            ),
            Column("event_id", "uuid", not_null=True, default=None),
            Column("user_id", "character varying(64)", not_null=True, default=None),
            Column("tier", "character varying(32)", not_null=True, default=None),
            Column(
                "domain",
                "character varying(64)",
                not_null=True,
                default="'default'::character varying",
            ),
            Column("job_name", "character varying(128)", not_null=False, default=None),
            Column(
                "provider",
                "character varying(32)",
                not_null=True,
                default="'openai'::character varying",
            ),
            Column("model", "character varying(128)", not_null=True, default=None),
            Column(
                "operation",
                "character varying(32)",
                not_null=True,
                default="'chat.completions'::character varying",
            ),
            Column("input_tokens", "bigint", not_null=True, default="0"),
            Column("cached_input_tokens", "bigint", not_null=True, default="0"),
            Column("output_tokens", "bigint", not_null=True, default="0"),
            Column("reasoning_tokens", "bigint", not_null=True, default="0"),
            Column("usage_reported", "boolean", not_null=True, default="true"),
            Column("latency_ms", "bigint", not_null=True, default="0"),
            Column("cache_hit", "boolean", not_null=True, default="false"),
            Column("insight_key", "character varying(256)", not_null=False, default=None),
            Column("success", "boolean", not_null=True, default="true"),
            Column("error_code", "character varying(64)", not_null=False, default=None),
            Column("episode_id", "character varying(64)", not_null=False, default=None),
            Column("podcast_id", "character varying(64)", not_null=False, default=None),
            Column("created_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "telemetry_llm_events_created_at_idx": "btree (created_at)",
            "telemetry_llm_events_episode_idx": "btree (episode_id) WHERE (episode_id IS NOT NULL)",
            "telemetry_llm_events_event_id_key": "UNIQUE btree (event_id)",
            "telemetry_llm_events_model_idx": "btree (model)",
            "telemetry_llm_events_pkey": "UNIQUE btree (id)",
            "telemetry_llm_events_user_created_idx": "btree (user_id, created_at)",
        },
        keys={
            "telemetry_llm_events_event_id_key": "UNIQUE (event_id)",
            "telemetry_llm_events_pkey": "PRIMARY KEY (id)",
        },
    ),
    "cost_user_daily": Table(
        columns=[
            Column("user_id", "character varying(64)", not_null=True, default=None),
            Column("date", "date", not_null=True, default=None),
            Column("tier", "character varying(32)", not_null=True, default=None),
            Column("jobs", "bigint", not_null=True, default="0"),
            Column("ai_calls", "bigint", not_null=True, default="0"),
            Column("cpu_ms", "bigint", not_null=True, default="0"),
            Column("tokens_in", "bigint", not_null=True, default="0"),
            Column("tokens_out", "bigint", not_null=True, default="0"),
            Column("cost_usd", "numeric(18,8)", not_null=True, default="0"),
            Column("updated_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "cost_user_daily_date_cost_idx": "btree (date, cost_usd DESC)",
            "cost_user_daily_pkey": "UNIQUE btree (user_id, date)",
        },
        keys={
            "cost_user_daily_pkey": "PRIMARY KEY (user_id, date)",
        },
    ),
    "cost_global_daily": Table(
        columns=[
            Column("date", "date", not_null=True, default=None),
            Column("jobs", "bigint", not_null=True, default="0"),
            Column("ai_calls", "bigint", not_null=True, default="0"),
            Column("cpu_ms", "bigint", not_null=True, default="0"),
            Column("tokens_in", "bigint", not_null=True, default="0"),
            Column("tokens_out", "bigint", not_null=True, default="0"),
            Column("cost_usd", "numeric(18,8)", not_null=True, default="0"),
            Column("tier_breakdown_json", "jsonb", not_null=True, default="'{}'::jsonb"),
            Column("updated_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "cost_global_daily_pkey": "UNIQUE btree (date)",
        },
        keys={
            "cost_global_daily_pkey": "PRIMARY KEY (date)",
        },
    ),
    "cost_budgets": Table(
        columns=[
            Column(
                "id", "bigint", not_null=True, default="nextval('cost_budgets_id_seq'::regclass)"
            ),
            Column("apply_scope", "character varying(96)", not_null=True, default=None),
            Column("cpu_ms_per_day", "bigint", not_null=False, default=None),
            Column("jobs_per_day", "bigint", not_null=False, default=None),
            Column("llm_input_tokens_per_day", "bigint", not_null=False, default=None),
            Column("llm_output_tokens_per_day", "bigint", not_null=False, default=None),
            Column("enabled", "boolean", not_null=True, default="true"),
            Column("updated_by", "character varying(128)", not_null=False, default=None),
            Column("created_at", "timestamp with time zone", not_null=True, default="now()"),
            Column("updated_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "cost_budgets_apply_scope_key": "UNIQUE btree (apply_scope)",
            "cost_budgets_pkey": "UNIQUE btree (id)",
        },
        keys={
            "cost_budgets_apply_scope_key": "UNIQUE (apply_scope)",
            "cost_budgets_pkey": "PRIMARY KEY (id)",
        },
    ),
    "cost_events": Table(
        columns=[
            Column(
                "id", "bigint", not_null=True, default="nextval('cost_events_id_seq'::regclass)"
            ),
            Column("event_id", "uuid", not_null=True, default=None),
            Column("event_type", "character varying(64)", not_null=True, default=None),
            Column("service", "character varying(32)", not_null=True, default=None),
            Column("quantity", "numeric(24,6)", not_null=True, default=None),
            Column("unit", "character varying(32)", not_null=True, default=None),
            Column("metadata", "jsonb", not_null=True, default="'{}'::jsonb"),
            Column("user_id", "character varying(64)", not_null=False, default=None),
            Column("tier", "character varying(32)", not_null=False, default=None),
            Column("episode_id", "character varying(64)", not_null=False, default=None),
            Column("podcast_id", "character varying(64)", not_null=False, default=None),
            Column("entities", "jsonb", not_null=True, default="'{}'::jsonb"),
            Column("created_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "cost_events_created_at_idx": "btree (created_at)",
            "cost_events_episode_idx": "btree (episode_id) WHERE (episode_id IS NOT NULL)",
            "cost_events_event_id_key": "UNIQUE btree (event_id)",
            "cost_events_pkey": "UNIQUE btree (id)",
            "cost_events_podcast_idx": "btree (podcast_id) WHERE (podcast_id IS NOT NULL)",
        },
        keys={
            "cost_events_event_id_key": "UNIQUE (event_id)",
            "cost_events_pkey": "PRIMARY KEY (id)",
        },
    ),
    "entity_costs": Table(
        columns=[
            Column("entity_type", "character varying(16)", not_null=True, default=None),
            Column("entity_id", "character varying(64)", not_null=True, default=None),
            Column("podcast_id", "character varying(64)", not_null=False, default=None),
            Column("total_cost_usd", "numeric(18,8)", not_null=True, default="0"),
            Column("cost_by_service", "jsonb", not_null=True, default="'{}'::jsonb"),
            Column("cost_by_category", "jsonb", not_null=True, default="'{}'::jsonb"),
            Column("usage_metrics", "jsonb", not_null=True, default="'{}'::jsonb"),
            Column("event_count", "bigint", not_null=True, default="0"),
            Column("calculated_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "entity_costs_pkey": "UNIQUE btree (entity_type, entity_id)",
            "entity_costs_podcast_idx": "btree (podcast_id, total_cost_usd DESC)",
        },
        keys={
            "entity_costs_pkey": "PRIMARY KEY (entity_type, entity_id)",
        },
    ),
    "cost_monthly_summary": Table(
        columns=[
            Column("year", "integer", not_null=True, default=None),
            Column("month", "integer", not_null=True, default=None),
            Column("jobs", "bigint", not_null=True, default="0"),
            Column("ai_calls", "bigint", not_null=True, default="0"),
            Column("cpu_ms", "bigint", not_null=True, default="0"),
            Column("tokens_in", "bigint", not_null=True, default="0"),
            Column("tokens_out", "bigint", not_null=True, default="0"),
            Column("cost_usd", "numeric(18,8)", not_null=True, default="0"),
            Column("cost_by_service", "jsonb", not_null=True, default="'{}'::jsonb"),
            Column("podcast_breakdown", "jsonb", not_null=True, default="'{}'::jsonb"),
            Column("updated_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "cost_monthly_summary_pkey": "UNIQUE btree (year, month)",
        },
        keys={
            "cost_monthly_summary_pkey": "PRIMARY KEY (year, month)",
        },
    ),
}
