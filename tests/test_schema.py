"""The live schema, after every migration, still holds the seed's contract."""

from __future__ import annotations

import re

import asyncpg
import pytest

from tests.schema_spec import SEED_TABLES, Column

_COLUMNS = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1"
_KEYS = """
SELECT conname, pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u')
"""
_INDEXDEF = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ USING (.*)$")


def _short_indexdef(indexdef: str) -> str:
    match = _INDEXDEF.match(indexdef)
    assert match, indexdef
    return f"{match.group(1) or ''}{match.group(2)}"


@pytest.mark.parametrize("table", sorted(SEED_TABLES))
async def test_columns_match_the_seed(pool: asyncpg.Pool, table: str) -> None:
    live = {row["name"]: Column(**dict(row)) for row in await pool.fetch(_COLUMNS, table)}
    assert live, f"table {table} does not exist"
    for expected in SEED_TABLES[table].columns:
        assert live.get(expected.name) == expected, f"{table}.{expected.name}"


@pytest.mark.parametrize("table", sorted(SEED_TABLES))
async def test_indexes_and_keys_match_the_seed(pool: asyncpg.Pool, table: str) -> None:
    indexes = {
        row["indexname"]: _short_indexdef(row["indexdef"])
        for row in await pool.fetch(_INDEXES, table)
    }
    keys = {row["conname"]: row["definition"] for row in await pool.fetch(_KEYS, table)}
    spec = SEED_TABLES[table]
    for name, definition in spec.indexes.items():
        assert indexes.get(name) == definition, f"index {name}"
    assert {k: keys.get(k) for k in spec.keys} == spec.keys


async def test_the_comparison_catches_a_changed_column(pool: asyncpg.Pool) -> None:
    """The test above could fail: alter a seed column inside a rolled-back transaction."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("ALTER TABLE cost_user_daily ALTER COLUMN cpu_ms TYPE integer")
            await conn.execute("ALTER TABLE cost_budgets ALTER COLUMN updated_by SET DEFAULT 'x'")
            rows = {
                r["name"]: Column(**dict(r)) for r in await conn.fetch(_COLUMNS, "cost_user_daily")
            }
            budgets = {
                r["name"]: Column(**dict(r)) for r in await conn.fetch(_COLUMNS, "cost_budgets")
            }
        finally:
            await tx.rollback()
    spec_cpu = next(c for c in SEED_TABLES["cost_user_daily"].columns if c.name == "cpu_ms")
    spec_by = next(c for c in SEED_TABLES["cost_budgets"].columns if c.name == "updated_by")
    assert rows["cpu_ms"] != spec_cpu
    assert budgets["updated_by"] != spec_by
