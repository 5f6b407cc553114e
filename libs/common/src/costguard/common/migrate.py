"""Plain-SQL migrations: ``NNNN_name.up.sql`` applied once each, in order.

``schema_migrations`` records each applied version with the SHA-256 of its up file, so an
applied migration that was edited afterwards is refused rather than silently diverging.
``down`` rolls back the newest applied migration with its ``.down.sql`` file. A session
advisory lock keeps two migrators (say, two replicas starting at once) from racing.

    python -m costguard.common.migrate up|down|status
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from costguard.common.config import ConfigError, Env
from costguard.common.entrypoint import run_or_exit
from costguard.common.probe import connect_postgres

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.up\.sql$")
_LOCK_KEY = 7_310_000_001  # any fixed bigint, unique to this runner

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    char(64) NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_sql: str
    down_sql: str | None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.up.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: expected NNNN_name.up.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations have version {version:04d}")
        down = path.with_name(path.name.replace(".up.sql", ".down.sql"))
        found[version] = Migration(
            version=version,
            name=match.group(2),
            up_sql=path.read_text(),
            down_sql=down.read_text() if down.exists() else None,
        )
    return [found[v] for v in sorted(found)]


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    await conn.execute(_BOOKKEEPING)
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return {row["version"]: row for row in rows}


def _verify(applied: dict[int, asyncpg.Record], migrations: list[Migration]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"migration {version:04d}_{row['name']} is applied but its file is gone"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {migration.label} was edited after it was applied "
                f"(checksum {row['checksum'][:12]} in the database, "
                f"{migration.checksum[:12]} on disk); add a new migration instead"
            )


async def migrate_up(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[str]:
    """Apply every pending migration, each in its own transaction; return their labels."""
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        applied = await _applied(conn)
        _verify(applied, migrations)
        done: list[str] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.up_sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration.label)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def rollback_newest(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> str | None:
    """Roll back the newest applied migration; return its label, or None if none is applied."""
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        applied = await _applied(conn)
        _verify(applied, migrations)
        if not applied:
            return None
        newest = next(m for m in migrations if m.version == max(applied))
        if newest.down_sql is None:
            raise MigrationError(f"migration {newest.label} has no .down.sql file")
        async with conn.transaction():
            await conn.execute(newest.down_sql)
            await conn.execute("DELETE FROM schema_migrations WHERE version = $1", newest.version)
        return newest.label
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def migration_status(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[tuple[str, datetime | None]]:
    migrations = load_migrations() if migrations is None else migrations
    applied = await _applied(conn)
    _verify(applied, migrations)
    return [
        (m.label, applied[m.version]["applied_at"] if m.version in applied else None)
        for m in migrations
    ]


async def _main(command: str, dsn: str) -> None:
    conn = await connect_postgres(dsn)
    try:
        if command == "up":
            done = await migrate_up(conn)
            print("applied: " + ", ".join(done) if done else "database is up to date")
        elif command == "down":
            label = await rollback_newest(conn)
            print(f"rolled back: {label}" if label else "nothing to roll back")
        else:
            for label, applied_at in await migration_status(conn):
                print(f"{label}  {applied_at.isoformat() if applied_at else 'pending'}")
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "up"
    usage = "usage: python -m costguard.common.migrate [up|down|status]  (DATABASE_URL)"
    if args in (["-h"], ["--help"]):
        print(usage)
        raise SystemExit(0)
    if command not in ("up", "down", "status") or len(args) > 1:
        print(usage, file=sys.stderr)
        raise SystemExit(2)
    try:
        dsn = Env(os.environ).database_url()
    except ConfigError as exc:
        print(f"costguard: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        run_or_exit(_main(command, dsn))
    except MigrationError as exc:
        print(f"costguard: migration error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
