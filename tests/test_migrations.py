"""``make migrate``: each migration once, checksums kept, an edited one refused, newest undone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from costguard.common.migrate import (
    MIGRATIONS_DIR,
    MigrationError,
    load_migrations,
    migrate_up,
    migration_status,
    rollback_newest,
)
from costguard.devstack import DevStack


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
    assert after < before  # the newest migration's objects went, and nothing else


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
