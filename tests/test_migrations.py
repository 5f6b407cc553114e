"""``make migrate``: each migration once, checksums kept, an edited one refused, newest undone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from costguard.common.db import create_pool
from costguard.common.migrate import (
    MIGRATIONS_DIR,
    MigrationError,
    load_migrations,
    migrate_up,
    migration_status,
    rollback_newest,
)
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.common.storage import record_objects
from costguard.devstack import DevStack
from costguard.rollup.rollup import Pricing, rollup_costs_for_date


@pytest.fixture
async def empty_db(stack: DevStack) -> AsyncIterator[str]:
    """A database of its own, so rolling back never disturbs the other tests."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    admin_dsn = stack.postgres.dsn.rsplit("/", 1)[0] + "/postgres"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield stack.postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def _schema_objects(conn: asyncpg.Connection) -> set[str]:
    """Tables, indexes and functions of the public schema, by kind and name."""
    rows = await conn.fetch(
        "SELECT 'table ' || tablename AS name FROM pg_tables WHERE schemaname = 'public'"
        " UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'public'"
        " UNION ALL SELECT 'function ' || p.proname FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
    )
    return {row["name"] for row in rows}


async def test_applies_each_migration_once_with_its_checksum(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        first = await migrate_up(conn)
        second = await migrate_up(conn)
        recorded = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY 1")
    finally:
        await conn.close()
    migrations = load_migrations()
    assert first == [m.label for m in migrations]
    assert second == []
    assert [(r["version"], r["checksum"]) for r in recorded] == [
        (m.version, m.checksum) for m in migrations
    ]


async def test_refuses_an_applied_migration_that_was_edited(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate_up(conn, load_migrations(folder))
        edited = folder / "0001_seed_tables.up.sql"
        edited.write_text(edited.read_text() + "\n-- a quiet change\n")
        with pytest.raises(
            MigrationError, match="0001_seed_tables was edited after it was applied"
        ):
            await migrate_up(conn, load_migrations(folder))
    finally:
        await conn.close()


async def test_rolls_back_the_newest_then_reapplies(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate_up(conn, load_migrations()[:-1])
        previous = await _schema_objects(conn)
        await migrate_up(conn)
        newest = load_migrations()[-1]
        before = await _schema_objects(conn)
        assert await rollback_newest(conn) == newest.label
        after = await _schema_objects(conn)
        status = dict(await migration_status(conn))
        assert status[newest.label] is None
        assert await migrate_up(conn) == [newest.label]
        assert await _schema_objects(conn) == before
    finally:
        await conn.close()
    # Rolled back, the schema is the one before the newest migration: its objects went, and
    # what it changed is back.
    assert after == previous
    assert after != before


def _cli(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "costguard.common.migrate", *args],
        env={**os.environ, "DATABASE_URL": dsn},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_up_status_down(empty_db: str) -> None:
    up = _cli("up", dsn=empty_db)
    assert up.returncode == 0, up.stderr
    assert "0001_seed_tables" in up.stdout
    assert _cli("up", dsn=empty_db).stdout.strip() == "database is up to date"
    down = _cli("down", dsn=empty_db)
    assert down.stdout.strip() == f"rolled back: {load_migrations()[-1].label}"
    status = _cli("status", dsn=empty_db).stdout.splitlines()
    assert status[-1].endswith("pending")
    assert "pending" not in status[0]


def test_cli_names_a_bad_database_url() -> None:
    result = _cli("up", dsn="nonsense")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "costguard: configuration error: DATABASE_URL: expected "
        "postgresql://user:password@host:port/database, got 'nonsense'"
    ]


# Rows in costguard's first cost-event vocabulary, as the SDK and the dev seed wrote them
# before migration 0009, each with what the first vocabulary's rates charged for it, by hand
# ($0.005 per 1,000 PUTs, $0.0004 per 1,000 GETs, free deletes, $0.10 per 1,000 emails,
# $0.40 per million SQS requests of up to 64 KiB, whatever the message count, $0.0000166667
# per GB-second and $0.20 per million Lambda requests). Storage, which the first vocabulary
# charged 30 days of with each upload, is now what is held: the upload that names its key is
# held from noon to the end of the day (the backfill of 0011 found it), the others hold
# nothing that could end.
GIB = 2**30
HALF_A_DAY = Decimal("0.023") / GIB / 2_592_000 * 43_200  # per byte, from noon to midnight
FIRST_VOCABULARY: list[tuple[str, str, str, str, dict[str, Any], Decimal]] = [
    ("s3.put_object", "s3", "1", "request",
     {"key": "a.mp3", "size_bytes": GIB // 2, "size_mb": 512.0, "size_known": True},
     Decimal("0.000005") + GIB // 2 * HALF_A_DAY),
    ("s3.put_object", "s3", "1", "request",
     {"key": "b.mp3", "size_bytes": 0, "size_known": False}, Decimal("0.000005")),
    ("s3.copy_object", "s3", "1", "request", {"size_bytes": 1_048_576}, Decimal("0.000005")),
    ("s3.get_object", "s3", "2", "request", {"key": "a.mp3", "size_bytes": GIB},
     2 * Decimal("0.0000004")),
    ("s3.head_object", "s3", "1", "request", {}, Decimal("0.0000004")),
    ("s3.list_objects_v2", "s3", "1", "request", {}, Decimal("0.000005")),
    ("s3.delete_objects", "s3", "1", "request", {"deleted_count": 900}, Decimal(0)),
    ("ses.send_email", "ses", "3", "email", {"recipients": 3, "template": ""},
     3 * Decimal("0.0001")),
    ("ses.send_bulk_templated_email", "ses", "3", "email",
     {"recipients": 3, "destinations": 3, "destinations_failed": 1}, 3 * Decimal("0.0001")),
    ("sqs.send_message", "sqs", "1", "message", {"body_bytes": 65_537},
     2 * Decimal("0.0000004")),
    ("sqs.send_message", "sqs", "4", "message", {"body_bytes": 200},  # the dev seed's kind
     Decimal("0.0000004")),
    ("sqs.send_message_batch", "sqs", "10", "message", {"body_bytes": 5_000},
     Decimal("0.0000004")),
    ("lambda.invoke", "lambda", "0.30875", "gb_second",
     {"function": "resize", "billed_duration_ms": 1235, "memory_mb": 256},
     Decimal("0.30875") * Decimal("0.0000166667")),
    ("lambda.request", "lambda", "1", "request",
     {"function": "resize", "billed_duration_ms": 1235, "memory_mb": 256},
     Decimal("0.0000002")),
    ("lambda.invoke", "lambda", "2", "ms", {}, Decimal(0)),  # a unit it never priced
]  # fmt: skip


async def test_0009_rewrites_the_first_vocabulary_and_a_rerun_prices_it_as_before(
    empty_db: str,
) -> None:
    migrations = load_migrations()
    (vocabulary,) = [m for m in migrations if m.label == "0009_seed_cost_vocabulary"]
    conn = await asyncpg.connect(empty_db)
    await migrate_up(conn, [m for m in migrations if m.version < vocabulary.version])
    pool = await create_pool(empty_db, max_size=2)  # with the JSON codecs
    try:
        noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
        for event_type, service, quantity, unit, metadata, _ in FIRST_VOCABULARY:
            await pool.execute(
                "INSERT INTO cost_events (event_id, event_type, service, quantity, unit, "
                "metadata, episode_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                event_id := uuid.uuid4(), event_type, service, Decimal(quantity), unit, metadata,
                str(event_id), noon,
            )  # fmt: skip
        before = [dict(r) for r in await pool.fetch("SELECT * FROM cost_events ORDER BY id")]
        assert await migrate_up(conn) == [m.label for m in migrations if m.version >= 9]
        after = {r["id"]: dict(r) for r in await pool.fetch("SELECT * FROM cost_events")}

        names = {(r["event_type"], r["service"], r["unit"]) for r in after.values()}
        assert names == {
            ("s3_operation", "s3_put", "requests"),
            ("s3_operation", "s3_copy", "requests"),
            ("s3_operation", "s3_get", "requests"),
            ("s3_operation", "s3_head", "requests"),
            ("s3_operation", "s3_list", "requests"),
            ("s3_operation", "s3_delete", "requests"),
            ("ses_email", "ses", "emails"),
            ("sqs_message", "sqs", "messages"),
            ("lambda_invocation", "lambda", "requests"),
            ("lambda.invoke", "lambda", "ms"),  # never priced: left as it was
        }
        upload = after[before[0]["id"]]["metadata"]
        assert upload["operation"] == "PutObject"
        assert (upload["s3_key"], upload["file_size_mb"], upload["size_bytes"]) == (
            "a.mp3",
            512.0,
            GIB // 2,
        )
        assert upload["migrated_from"] == {
            "event_type": "s3.put_object",
            "service": "s3",
            "unit": "request",
            "quantity": 1,
            "added": ["file_size_mb", "operation", "s3_key"],
            "replaced": {},
        }
        invoke = after[before[12]["id"]]
        assert invoke["quantity"] == 0  # its invocation is the lambda.request row's
        assert (invoke["metadata"]["duration_seconds"], invoke["metadata"]["memory_mb"]) == (
            0.30875,  # GB-seconds at 1 GB: exactly what it was billed
            1024,
        )
        assert invoke["metadata"]["migrated_from"]["replaced"] == {"memory_mb": 256}
        assert [after[r["id"]]["metadata"]["operation"] for r in before[9:12]] == [
            "SendMessage",
            "SendMessageBatch",  # 4 messages billed as one request, as before
            "SendMessageBatch",
        ]

        # Re-rolling the day prices every event as the first vocabulary did, storage aside.
        prices = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
        result = await rollup_costs_for_date(
            pool, date(2026, 11, 20), tz=ZoneInfo("UTC"), pricing=prices
        )
        # Stored exact; compared as shown, rounded once to 8 places (the hand-made storage
        # rate is a 28-digit Decimal division, the sheet's is kept to 1e-24 per byte).
        cents = Decimal("0.00000001")
        expected = sum((row[5] for row in FIRST_VOCABULARY), Decimal(0))
        assert result.cost_usd.quantize(cents, ROUND_HALF_UP) == expected.quantize(
            cents, ROUND_HALF_UP
        )
        episodes = {
            r["entity_id"]: r["total_cost_usd"]
            for r in await pool.fetch("SELECT entity_id, total_cost_usd FROM entity_costs")
        }
        for row, (*_, cost) in zip(before, FIRST_VOCABULARY, strict=True):
            shown = episodes[str(row["event_id"])].quantize(cents, ROUND_HALF_UP)
            assert shown == cost.quantize(cents, ROUND_HALF_UP), row
        unpriced = await pool.fetchval("SELECT unpriced_json FROM cost_global_daily")
        assert unpriced.keys() == {"lambda:lambda.invoke"}
        item = unpriced["lambda:lambda.invoke"]
        assert (Decimal(item["cost_usd"]), item["events"], item["reason"]) == (
            Decimal(0),
            1,
            "unknown event type 'lambda.invoke'",
        )

        # Down (the later migrations first): every row exactly as it was.
        newer = [m.label for m in reversed(migrations) if m.version > vocabulary.version]
        assert [await rollback_newest(conn) for _ in newer] == newer
        assert await rollback_newest(conn) == vocabulary.label
        again = [dict(r) for r in await pool.fetch("SELECT * FROM cost_events ORDER BY id")]
        assert again == before
    finally:
        await pool.close()
        await conn.close()


# Cost events as the SDK and the podcast app record S3 operations, and some that name no
# object: what 0011's backfill reads, which must be what record_objects reads.
S3_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("s3_put", {"bucket": "media", "s3_key": "a.mp3", "size_bytes": 1000, "file_size_mb": 1}),
    ("s3_put", {"s3_key": "ep-1/audio.mp3", "file_size_mb": 5.5}),  # the app: no bucket
    ("s3_copy", {"bucket": "media", "s3_key": "a.mp3", "size_bytes": -3}),
    ("s3_put", {"bucket": "media", "s3_key": "b.mp3", "size_bytes": "12"}),  # size unread
    ("s3_delete", {"bucket": "media", "s3_key": "a.mp3"}),
    ("s3_delete", {"bucket": "media", "keys": ["b.mp3", 7, "c.mp3", ""], "deleted_count": 3}),
    ("s3_delete", {"bucket": "media", "s3_key": "", "keys": ["d.mp3"]}),
    ("s3_put", {"bucket": "media", "s3_key": "k" * 1025, "size_bytes": 1}),  # not S3's
    ("s3_put", {"bucket": 5, "s3_key": "e.mp3", "size_bytes": 1}),  # bucket '' then
    ("s3_put", {"bucket": "media", "size_bytes": 1}),  # names no object
    ("s3_get", {"bucket": "media", "s3_key": "a.mp3", "size_bytes": 1000}),
]


async def test_0011_backfills_the_objects_record_objects_would_have_recorded(
    empty_db: str,
) -> None:
    conn = await asyncpg.connect(empty_db)
    pool = await create_pool(empty_db, max_size=2)
    try:
        await migrate_up(conn)
        start = datetime(2026, 11, 20, 9, tzinfo=UTC)
        ids = []
        for minute, (service, metadata) in enumerate(S3_EVENTS):
            ids.append(uuid.uuid4())
            await pool.execute(
                "INSERT INTO cost_events (event_id, event_type, service, quantity, unit, "
                "metadata, user_id, tier, created_at) "
                "VALUES ($1, 's3_operation', $2, 1, 'requests', $3, 'u1', 'pro', $4)",
                ids[-1], service, metadata, start + timedelta(minutes=minute),
            )  # fmt: skip
        async with pool.acquire() as recording, recording.transaction():
            await record_objects(recording, ids, tz=ZoneInfo("UTC"))
        query = "SELECT * FROM s3_objects ORDER BY stored_at, key_index"
        recorded = [dict(r) for r in await pool.fetch(query)]
        newer = [m for m in reversed(load_migrations()) if m.version >= 11]
        assert [await rollback_newest(conn) for _ in newer] == [m.label for m in newer]
        await migrate_up(conn)
        backfilled = [dict(r) for r in await pool.fetch(query)]
    finally:
        await pool.close()
        await conn.close()
    assert backfilled == recorded
    named = [(r["bucket"], r["s3_key"], r["key_index"], r["size_bytes"]) for r in recorded]
    assert named == [
        ("media", "a.mp3", 0, 1000),
        ("", "ep-1/audio.mp3", 0, Decimal("5.5") * 1_048_576),
        ("media", "a.mp3", 0, 0),
        ("media", "b.mp3", 0, 0),
        ("media", "a.mp3", 0, 0),
        ("media", "b.mp3", 0, 0),
        ("media", "c.mp3", 2, 0),
        ("media", "d.mp3", 0, 0),  # an empty s3_key names nothing: the list does
        ("", "e.mp3", 0, 1),
    ]
    ends = {(r["s3_key"], r["stored_at"]): r["ended_at"] for r in recorded}
    assert ends[("a.mp3", start)] == start + timedelta(minutes=2)  # overwritten by the copy
    assert ends[("a.mp3", start + timedelta(minutes=2))] == start + timedelta(minutes=4)
    assert ends[("b.mp3", start + timedelta(minutes=3))] == start + timedelta(minutes=5)


_MONEY_COLUMNS = [
    ("cost_user_daily", "cost_usd"),
    ("cost_global_daily", "cost_usd"),
    ("cost_global_daily", "unpriced_cost_usd"),
    ("entity_costs_daily", "cost_usd"),
    ("entity_costs", "total_cost_usd"),
    ("cost_monthly_summary", "cost_usd"),
    ("rollup_runs", "cost_usd"),
]
_COLUMN_TYPE = """
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = $1::regclass AND attname = $2
"""
_EIGHTH = "0.000000125"  # half a unit of the 8th place: rounds up, once


async def _money_types(conn: asyncpg.Connection) -> list[str]:
    return [await conn.fetchval(_COLUMN_TYPE, table, column) for table, column in _MONEY_COLUMNS]


async def test_0010_stores_exact_money_and_its_down_rounds_it_to_8_places(empty_db: str) -> None:
    migrations = load_migrations()
    (exact,) = [m for m in migrations if m.label == "0010_exact_money"]
    conn = await asyncpg.connect(empty_db)
    pool = await create_pool(empty_db, max_size=2)  # with the JSON codecs
    try:
        await migrate_up(conn, [m for m in migrations if m.version < exact.version])
        assert await _money_types(conn) == ["numeric(18,8)"] * len(_MONEY_COLUMNS)
        await migrate_up(conn, [m for m in migrations if m.version <= exact.version])
        assert await _money_types(conn) == ["numeric"] * len(_MONEY_COLUMNS)

        day, cost = date(2026, 11, 20), Decimal(_EIGHTH)
        figures = {"pro": {"cost_usd": _EIGHTH, "jobs": 3}, "free": {"jobs": 1}}
        unpriced = {"x:y": {"cost_usd": _EIGHTH, "events": 2, "reason": "unknown event type 'y'"}}
        costs = {"ses": _EIGHTH, "odd": 7}
        await pool.execute(
            "INSERT INTO cost_user_daily (user_id, date, tier, cost_usd) "
            "VALUES ('u', $1, 'pro', $2)",
            day, cost,
        )  # fmt: skip
        await pool.execute(
            "INSERT INTO cost_global_daily (date, cost_usd, unpriced_cost_usd, tier_breakdown_json,"
            " cost_by_service_json, unpriced_json) VALUES ($1, $2, $2, $3, $4, $5),"
            " ($1 + 1, 0, 0, NULL, '{}', '{}')",
            day, cost, figures, costs, unpriced,
        )  # fmt: skip
        await pool.execute(
            "INSERT INTO entity_costs_daily (entity_type, entity_id, date, cost_usd, "
            "cost_by_service, cost_by_category) VALUES ('episode', 'ep', $1, $2, $3, $3)",
            day, cost, costs,
        )  # fmt: skip
        await pool.execute(
            "INSERT INTO entity_costs (entity_type, entity_id, total_cost_usd, cost_by_service, "
            "cost_by_category) VALUES ('episode', 'ep', $1, $2, $2)",
            cost, costs,
        )  # fmt: skip
        await pool.execute(
            "INSERT INTO cost_monthly_summary (year, month, cost_usd, cost_by_service, "
            "podcast_breakdown) VALUES (2026, 11, $1, $2, $2)",
            cost, costs,
        )  # fmt: skip
        await pool.execute(
            "INSERT INTO rollup_runs (trigger, from_date, to_date, cost_usd) "
            "VALUES ('cli', $1, $1, $2)",
            day, cost,
        )  # fmt: skip
        assert await pool.fetchval("SELECT cost_usd FROM cost_user_daily") == cost  # exact

        assert await rollback_newest(conn) == exact.label
        assert await _money_types(conn) == ["numeric(18,8)"] * len(_MONEY_COLUMNS)
        rounded = Decimal("0.00000013")
        for table, column in _MONEY_COLUMNS:
            values = await pool.fetch(f"SELECT {column} FROM {table} WHERE {column} <> 0")
            assert [r[0] for r in values] == [rounded], f"{table}.{column}"
        rounded_costs = {"ses": "0.00000013", "odd": 7}  # a number that is no string: as it was
        days = await pool.fetch("SELECT * FROM cost_global_daily ORDER BY date")
        assert days[0]["tier_breakdown_json"] == {
            "pro": {"cost_usd": "0.00000013", "jobs": 3},
            "free": {"jobs": 1},
        }
        assert days[0]["cost_by_service_json"] == rounded_costs
        assert days[0]["unpriced_json"] == {
            "x:y": {"cost_usd": "0.00000013", "events": 2, "reason": "unknown event type 'y'"}
        }
        assert (days[1]["tier_breakdown_json"], days[1]["unpriced_json"]) == (None, {})
        for table, maps in [
            ("entity_costs_daily", ("cost_by_service", "cost_by_category")),
            ("entity_costs", ("cost_by_service", "cost_by_category")),
            ("cost_monthly_summary", ("cost_by_service", "podcast_breakdown")),
        ]:
            row = await pool.fetchrow(f"SELECT * FROM {table}")
            assert row is not None
            assert [row[name] for name in maps] == [rounded_costs] * 2, table
        assert await migrate_up(conn) == [m.label for m in migrations if m.version >= exact.version]
    finally:
        await pool.close()
        await conn.close()


_VERSIONS = "SELECT date, version FROM cost_user_day_versions ORDER BY date"


async def _versions(conn: asyncpg.Connection) -> dict[date, int]:
    return {r["date"]: r["version"] for r in await conn.fetch(_VERSIONS)}


async def _last_change(conn: asyncpg.Connection, day: date) -> tuple[int | None, list[str] | None]:
    row = await conn.fetchrow(
        "SELECT previous, users FROM cost_user_day_changes WHERE date = $1 "
        "ORDER BY version DESC LIMIT 1",
        day,
    )
    assert row is not None
    return row["previous"], row["users"]


async def test_0014_versions_each_date_its_cost_changes_on_and_never_twice(empty_db: str) -> None:
    migrations = load_migrations()
    (versions,) = [m for m in migrations if m.label == "0014_user_day_versions"]
    conn = await asyncpg.connect(empty_db)
    first, second, third = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
    try:
        await migrate_up(conn, [m for m in migrations if m.version < versions.version])
        await conn.execute(
            "INSERT INTO cost_user_daily (user_id, date, tier, cost_usd) "
            "VALUES ('a', $1, 'pro', 1), ('b', $2, 'pro', 2)",
            first, second,
        )  # fmt: skip
        await migrate_up(conn, [m for m in migrations if m.version <= versions.version])
        # The dates already stored get their versions.
        before = await _versions(conn)
        assert set(before) == {first, second}
        seen = set(before.values())

        async def changed(statement: str, *args: Any) -> set[date]:
            old = await _versions(conn)
            await conn.execute(statement, *args)
            new = await _versions(conn)
            assert not seen & {new[d] for d in new if new[d] != old.get(d)}
            seen.update(new.values())
            assert set(old) <= set(new)
            return {d for d in new if new[d] != old.get(d)}

        update = "UPDATE cost_user_daily SET cost_usd = 3 WHERE user_id = 'a'"
        assert await changed(update) == {first}
        assert await _last_change(conn, first) == (before[first], ["a"])
        # b's tier is no change to the ranking (it reads tiers from the table); c is new.
        upsert = (
            "INSERT INTO cost_user_daily (user_id, date, tier) VALUES ('b', $1, 'free'), "
            "('c', $2, 'free') ON CONFLICT (user_id, date) DO UPDATE SET tier = 'free'"
        )
        assert await changed(upsert, second, third) == {third}
        assert await _last_change(conn, third) == (None, ["c"])
        assert await changed("DELETE FROM cost_user_daily WHERE date = $1", second) == {second}
        assert await _last_change(conn, second) == (before[second], ["b"])
        assert await changed("UPDATE cost_user_daily SET tier = 'x' WHERE false") == set()
        many = (
            "INSERT INTO cost_user_daily (user_id, date, tier) SELECT 'm' || n, $1, 'pro' "
            "FROM generate_series(1, 5001) AS n"
        )
        assert await changed(many, first) == {first}
        assert (await _last_change(conn, first))[1] is None  # too many to list: load the day
        await conn.execute("TRUNCATE cost_user_daily")
        assert await conn.fetch(_VERSIONS) == []  # no date has rows
        assert await conn.fetchval("SELECT count(*) FROM cost_user_day_changes") == 0
        await conn.execute(
            "INSERT INTO cost_user_daily (user_id, date, tier) VALUES ('a', $1, 'pro')", first
        )
        (again,) = await conn.fetch(_VERSIONS)
        assert again["version"] not in seen  # a version is never seen twice

        assert await rollback_newest(conn) == versions.label
        assert "table cost_user_day_versions" not in await _schema_objects(conn)
        await conn.execute("UPDATE cost_user_daily SET cost_usd = 4")  # no trigger left
    finally:
        await conn.close()
