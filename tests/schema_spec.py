"""The schemas the migrations are held to (``tests/test_schema.py``).

``SEED_TABLES`` are the cost-control seed's five tables, written as the seed writes them:
its column types and modifiers verbatim, its indexes and primary keys. They are not a copy
of our migrations: the test reads the live schema and fails on any seed column, default,
nullability, key or index that is missing or renamed. A live type may differ from the
seed's only as a widening listed, with its reason, in ``docs/schema.md``.

``OWN_TABLES`` are costguard's own tables for the podcast app's cost tracking (the seed
names no columns for them), frozen column by column from their migrations: a later
migration may add to them but not change what is there, except to widen a type so that
every value stays storable (the money columns became unconstrained ``numeric`` in 0010, to
hold exact sums), and that is written here too. Index definitions are
``pg_indexes.indexdef`` after ``USING``, prefixed by ``UNIQUE`` for unique indexes;
``keys`` are the primary key and unique constraints (a raw event table, partitioned by day
since 0016, holds them in each partition: those of its default partition are listed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedTable:
    columns: dict[str, str]  # name -> the seed's definition, e.g. "varchar(40) not null"
    indexes: tuple[tuple[str, ...], ...] = ()  # each index's columns, in order


SEED_TABLES = {
    "telemetry_job_events": SeedTable(
        columns={
            "id": "serial primary key",
            "job_id": "varchar(40)",
            "job_type": "varchar(40)",
            "user_id": "varchar(40) not null",
            "tier": "varchar(16) not null",
            "domain": "varchar(16) not null",
            "queued_at": "timestamptz",
            "started_at": "timestamptz",
            "finished_at": "timestamptz",
            "duration_ms": "int",
            "queue_wait_ms": "int",
            "success": "boolean",
            "error_code": "varchar(64)",
            "attempt": "int default 1",
            "rows_read": "int default 0",
            "rows_written": "int default 0",
            "cpu_ms": "int default 0",
            "mem_mb_peak": "int default 0",
            "created_at": "timestamptz default now()",
        },
        indexes=(("user_id", "started_at"), ("job_type", "started_at"), ("tier", "started_at")),
    ),
    "telemetry_llm_events": SeedTable(
        columns={
            "id": "serial primary key",
            "user_id": "varchar(40) not null",
            "tier": "varchar(16) not null",
            "llm_model": "varchar(40) not null",
            "context_type": "varchar(32) not null",
            "input_tokens": "int not null",
            "output_tokens": "int not null",
            "cache_hit": "boolean default false",
            "duration_ms": "int",
            "success": "boolean",
            "error_code": "varchar(64)",
            "created_at": "timestamptz default now()",
        },
        indexes=(("user_id", "created_at"), ("llm_model", "created_at")),
    ),
    "cost_user_daily": SeedTable(
        columns={
            "user_id": "varchar(40) not null",
            "date": "date not null",
            "tier": "varchar(16) not null",
            "jobs": "int default 0",
            "ai_calls": "int default 0",
            "cpu_ms": "bigint default 0",
            "tokens_in": "bigint default 0",
            "tokens_out": "bigint default 0",
            "cost_usd": "numeric(12,6) default 0",
            "created_at": "timestamptz default now()",
            "updated_at": "timestamptz default now()",
            "PRIMARY_KEY": "(user_id, date)",
        },
        indexes=(("date",), ("tier", "date")),
    ),
    "cost_global_daily": SeedTable(
        columns={
            "date": "date primary key",
            "jobs": "int default 0",
            "ai_calls": "int default 0",
            "cpu_ms": "bigint default 0",
            "tokens_in": "bigint default 0",
            "tokens_out": "bigint default 0",
            "cost_usd": "numeric(12,6) default 0",
            "tier_breakdown_json": "jsonb",
            "created_at": "timestamptz default now()",
            "updated_at": "timestamptz default now()",
        },
    ),
    "cost_budgets": SeedTable(
        columns={
            "id": "serial primary key",
            "daily_cpu_ms_cap": "bigint not null",
            "daily_jobs_cap": "int not null",
            "llm_input_tokens_cap": "bigint not null",
            "llm_output_tokens_cap": "bigint not null",
            "apply_scope": "varchar(16) not null",
            "updated_by": "varchar(80)",
            "updated_at": "timestamptz default now()",
        },
    ),
}


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
    keys: dict[str, str]  # a partitioned table's: those of its default partition
    partitioned: bool = False


OWN_TABLES = {
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
            "cost_events_podcast_idx": "btree (podcast_id) WHERE (podcast_id IS NOT NULL)",
        },
        keys={
            "cost_events_default_event_id_key": "UNIQUE (event_id)",
            "cost_events_default_pkey": "PRIMARY KEY (id)",
        },
        partitioned=True,
    ),
    "entity_costs": Table(
        columns=[
            Column("entity_type", "character varying(16)", not_null=True, default=None),
            Column("entity_id", "character varying(64)", not_null=True, default=None),
            Column("podcast_id", "character varying(64)", not_null=False, default=None),
            Column("total_cost_usd", "numeric", not_null=True, default="0"),
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
            Column("cost_usd", "numeric", not_null=True, default="0"),
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
    "cost_user_day_changes": Table(
        columns=[
            Column("date", "date", not_null=True, default=None),
            Column("version", "bigint", not_null=True, default=None),
            Column("previous", "bigint", not_null=False, default=None),
            Column("users", "text[]", not_null=False, default=None),
            Column("logged_at", "timestamp with time zone", not_null=True, default="now()"),
        ],
        indexes={
            "cost_user_day_changes_pkey": "UNIQUE btree (date, version)",
        },
        keys={
            "cost_user_day_changes_pkey": "PRIMARY KEY (date, version)",
        },
    ),
    "cost_user_day_versions": Table(
        columns=[
            Column("date", "date", not_null=True, default=None),
            Column("version", "bigint", not_null=True, default=None),
        ],
        indexes={
            "cost_user_day_versions_pkey": "UNIQUE btree (date)",
        },
        keys={
            "cost_user_day_versions_pkey": "PRIMARY KEY (date)",
        },
    ),
    "s3_objects": Table(
        columns=[
            Column("event_id", "uuid", not_null=True, default=None),
            Column("key_index", "integer", not_null=True, default="0"),
            Column("bucket", "text", not_null=True, default=None),
            Column("s3_key", "text", not_null=True, default=None),
            Column("size_bytes", "numeric", not_null=True, default=None),
            Column("stored_at", "timestamp with time zone", not_null=True, default=None),
            Column("ended_at", "timestamp with time zone", not_null=False, default=None),
            Column("user_id", "character varying(64)", not_null=False, default=None),
            Column("tier", "character varying(32)", not_null=False, default=None),
            Column("episode_id", "character varying(64)", not_null=False, default=None),
            Column("podcast_id", "character varying(64)", not_null=False, default=None),
        ],
        indexes={
            "s3_objects_pkey": "UNIQUE btree (event_id, key_index)",
            "s3_objects_key_idx": "btree (bucket, s3_key, stored_at)",
            "s3_objects_live_idx": (
                "btree (stored_at) WHERE ((ended_at IS NULL) AND (size_bytes > (0)::numeric))"
            ),
            "s3_objects_ended_idx": (
                "btree (ended_at, stored_at)"
                " WHERE ((ended_at IS NOT NULL) AND (size_bytes > (0)::numeric))"
            ),
        },
        keys={
            "s3_objects_pkey": "PRIMARY KEY (event_id, key_index)",
        },
    ),
}
