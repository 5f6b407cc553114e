"""The live schema, after every migration, still holds the seeds' contract.

The seed's five tables are compared with the seed's own text (``tests/schema_spec.py``):
every seed column by name, nullability and default; its type exactly, or widened as
``docs/schema.md`` lists; the seed's primary keys and indexes. Our own tables are compared
with their frozen definitions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from costguard.common.db import Connection
from tests.schema_spec import OWN_TABLES, SEED_TABLES, Column

SCHEMA_DOC = Path(__file__).parents[1] / "docs" / "schema.md"

_COLUMNS = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# Each plain (non-partial, non-expression) btree index as its key columns in order.
_INDEX_COLUMNS = """
SELECT i.indexrelid::regclass::text AS name, i.indisprimary AS primary_key,
       array(SELECT a.attname FROM unnest(i.indkey[:i.indnkeyatts - 1]) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
             ORDER BY k.o) AS columns
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE t.relname = $1 AND am.amname = 'btree' AND i.indpred IS NULL AND i.indexprs IS NULL
"""
_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1"
# A partitioned table's partitions (none for a plain table).
_PARTITIONS = "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = $1::regclass"
_KEYS = """
SELECT conname, pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u')
"""
_INDEXDEF = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ USING (.*)$")

# The seed's type names, as Postgres's format_type spells them.
_TYPES = {
    "int": "integer",
    "serial": "integer",
    "bigint": "bigint",
    "boolean": "boolean",
    "date": "date",
    "jsonb": "jsonb",
    "timestamptz": "timestamp with time zone",
}
_SEED_DEFINITION = re.compile(
    r"^(?P<type>[a-z]+(?:\(\d+(?:,\d+)?\))?)"
    r"(?P<not_null> not null)?(?P<primary_key> primary key)?(?: default (?P<default>.+))?$"
)


@dataclass(frozen=True)
class SeedColumn:
    type: str  # as format_type spells it
    not_null: bool
    default: str | None  # as pg_get_expr spells it; "nextval(" for a serial
    primary_key: bool


def seed_column(definition: str) -> SeedColumn:
    match = _SEED_DEFINITION.match(definition)
    assert match, f"cannot read the seed's {definition!r}"
    kind = match["type"]
    if kind.startswith("varchar("):
        pg_type = "character varying" + kind.removeprefix("varchar")
    elif kind.startswith("numeric("):
        pg_type = kind
    else:
        pg_type = _TYPES[kind]
    serial = kind == "serial"
    primary = bool(match["primary_key"])
    return SeedColumn(
        type=pg_type,
        not_null=bool(match["not_null"]) or primary,
        default="nextval(" if serial else match["default"],
        primary_key=primary,
    )


def seed_columns(table: str) -> dict[str, SeedColumn]:
    return {
        name: seed_column(definition)
        for name, definition in SEED_TABLES[table].columns.items()
        if name != "PRIMARY_KEY"
    }


def seed_primary_key(table: str) -> tuple[str, ...]:
    composite = SEED_TABLES[table].columns.get("PRIMARY_KEY")
    if composite:
        return tuple(part.strip() for part in composite.strip("()").split(","))
    return tuple(name for name, col in seed_columns(table).items() if col.primary_key)


def documented_widenings() -> dict[tuple[str, str], tuple[str, str]]:
    """``docs/schema.md``'s table: (table, column) -> (seed type, costguard type)."""
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for line in SCHEMA_DOC.read_text().splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in SEED_TABLES:
            table, column, seed_type, our_type, why = cells
            assert why, f"docs/schema.md gives no reason for widening {table}.{column}"
            rows[(table, column)] = (seed_type, our_type)
    return rows


_VARCHAR = re.compile(r"^character varying\((\d+)\)$")
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")


def is_widening(seed_type: str, live_type: str) -> bool:
    """Every value of ``seed_type`` is storable, unchanged, in ``live_type``."""
    if (seed_type, live_type) == ("integer", "bigint"):
        return True
    narrow, wide = _VARCHAR.match(seed_type), _VARCHAR.match(live_type)
    if narrow and wide:
        return int(wide[1]) >= int(narrow[1])
    narrow, wide = _NUMERIC.match(seed_type), _NUMERIC.match(live_type)
    if narrow and live_type == "numeric":  # unconstrained: any number, exactly
        return True
    if narrow and wide:
        p, s, p2, s2 = int(narrow[1]), int(narrow[2]), int(wide[1]), int(wide[2])
        return s2 >= s and p2 - s2 >= p - s
    return False


async def _primary_key_problems(conn: Connection, table: str) -> list[str]:
    """The seed's primary key, on the table or, for a raw event table partitioned by day
    (docs/schema.md), on each of its partitions."""
    problems = []
    partitions = [row[0] for row in await conn.fetch(_PARTITIONS, table)]
    for holder in partitions or [table]:
        primary = [
            tuple(row["columns"])
            for row in await conn.fetch(_INDEX_COLUMNS, holder)
            if row["primary_key"]
        ]
        if primary != [seed_primary_key(table)]:
            problems.append(f"{holder}: primary key {primary}, seed {seed_primary_key(table)}")
    return problems


async def seed_problems(conn: Connection, table: str) -> list[str]:
    """Where the live ``table`` breaks the seed's contract; empty when it holds."""
    live = {row["name"]: row for row in await conn.fetch(_COLUMNS, table)}
    if not live:
        return [f"table {table} does not exist"]
    widenings = documented_widenings()
    problems = []
    for name, seed in seed_columns(table).items():
        column = live.get(name)
        if column is None:
            problems.append(f"{table}.{name} is missing")
            continue
        if column["not_null"] != seed.not_null:
            problems.append(
                f"{table}.{name}: NOT NULL is {column['not_null']}, seed {seed.not_null}"
            )
        default = column["default"]
        if seed.default == "nextval(":
            if not (default or "").startswith("nextval("):
                problems.append(f"{table}.{name}: a serial needs a sequence, default {default!r}")
        elif default != seed.default:
            problems.append(f"{table}.{name}: default {default!r}, seed {seed.default!r}")
        if column["type"] != seed.type:
            listed = widenings.get((table, name))
            if listed != (seed.type, column["type"]) or not is_widening(*listed):
                problems.append(
                    f"{table}.{name}: type {column['type']}, seed {seed.type}, "
                    "and docs/schema.md lists no such widening"
                )
    indexes = [
        (row["columns"], row["primary_key"]) for row in await conn.fetch(_INDEX_COLUMNS, table)
    ]
    problems += await _primary_key_problems(conn, table)
    for wanted in SEED_TABLES[table].indexes:
        # An index whose leading columns are the seed's serves every query the seed's does.
        if not any(tuple(columns[: len(wanted)]) == wanted for columns, _ in indexes):
            problems.append(f"{table}: no btree index on {wanted}")
    return problems


@pytest.mark.parametrize("table", sorted(SEED_TABLES))
async def test_the_seed_tables_hold_the_seed_contract(pool: asyncpg.Pool, table: str) -> None:
    async with pool.acquire() as conn:
        problems = await seed_problems(conn, table)
    assert problems == [], "\n".join(problems)


async def test_every_documented_widening_is_real_and_needed(pool: asyncpg.Pool) -> None:
    widenings = documented_widenings()
    assert widenings, "docs/schema.md lists no widenings: is its table still there?"
    for (table, name), (seed_type, our_type) in widenings.items():
        assert seed_columns(table)[name].type == seed_type, f"{table}.{name}: seed type"
        live = {row["name"]: row["type"] for row in await pool.fetch(_COLUMNS, table)}
        assert live[name] == our_type, f"{table}.{name}: docs/schema.md is out of date"
        assert seed_type != our_type, f"{table}.{name} is not widened"
        assert is_widening(seed_type, our_type), f"{table}.{name} is narrowed"


def _value(seed: SeedColumn) -> Any:
    if seed.type.startswith("character varying"):
        return "x"
    if seed.type in ("integer", "bigint"):
        return 1
    if seed.type == "date":
        return date(2025, 1, 21)
    if seed.type == "timestamp with time zone":
        return datetime(2025, 1, 21, tzinfo=UTC)
    raise AssertionError(f"no sample value for {seed.type}")


@pytest.mark.parametrize("table", sorted(SEED_TABLES))
async def test_a_row_with_only_the_seed_columns_is_valid(pool: asyncpg.Pool, table: str) -> None:
    """As the seed's own code writes it: only what the seed requires, the rest defaulted."""
    required = {
        name: _value(seed)
        for name, seed in seed_columns(table).items()
        if seed.not_null and seed.default is None
    }
    columns = ", ".join(required)
    placeholders = ", ".join(f"${i}" for i in range(1, len(required) + 1))
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            row = await conn.fetchrow(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING *",
                *required.values(),
            )
        finally:
            await tx.rollback()
    assert row is not None
    for name, seed in seed_columns(table).items():
        if seed.default in ("0", "1"):
            assert row[name] == int(seed.default), f"{table}.{name}"
        elif seed.default == "false":
            assert row[name] is False, f"{table}.{name}"


async def test_the_comparison_catches_a_broken_contract(pool: asyncpg.Pool) -> None:
    """The checks above could fail: break each kind of promise inside a rolled-back change."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("ALTER TABLE cost_user_daily ALTER COLUMN cpu_ms TYPE integer")
            await conn.execute("ALTER TABLE cost_user_daily RENAME COLUMN tokens_in TO t_in")
            await conn.execute("DROP INDEX cost_user_daily_tier_date_idx")
            await conn.execute("ALTER TABLE cost_budgets ALTER COLUMN updated_by SET DEFAULT 'x'")
            await conn.execute("ALTER TABLE cost_budgets ALTER COLUMN daily_jobs_cap DROP NOT NULL")
            await conn.execute("ALTER TABLE telemetry_llm_events ALTER COLUMN llm_model TYPE text")
            daily = await seed_problems(conn, "cost_user_daily")
            budgets = await seed_problems(conn, "cost_budgets")
            llm = await seed_problems(conn, "telemetry_llm_events")
        finally:
            await tx.rollback()
    assert any("cpu_ms: type integer" in p for p in daily)
    assert "cost_user_daily.tokens_in is missing" in daily
    assert "cost_user_daily: no btree index on ('tier', 'date')" in daily
    assert any(p.startswith("cost_budgets.updated_by: default") for p in budgets)
    assert any(p.startswith("cost_budgets.daily_jobs_cap: NOT NULL") for p in budgets)
    assert any(p.startswith("telemetry_llm_events.llm_model: type text") for p in llm)


def test_widening_means_every_seed_value_fits() -> None:
    assert is_widening("integer", "bigint")
    assert is_widening("character varying(40)", "character varying(64)")
    assert is_widening("numeric(12,6)", "numeric(18,8)")
    assert not is_widening("bigint", "integer")
    assert not is_widening("character varying(40)", "character varying(32)")
    assert not is_widening("numeric(12,6)", "numeric(12,8)")  # fewer whole digits
    assert is_widening("numeric(12,6)", "numeric")
    assert not is_widening("numeric", "numeric(18,8)")
    assert not is_widening("integer", "double precision")


def _short_indexdef(indexdef: str) -> str:
    match = _INDEXDEF.match(indexdef)
    assert match, indexdef
    return f"{match.group(1) or ''}{match.group(2)}"


@pytest.mark.parametrize("table", sorted(OWN_TABLES))
async def test_own_tables_keep_their_columns(pool: asyncpg.Pool, table: str) -> None:
    live = {row["name"]: Column(**dict(row)) for row in await pool.fetch(_COLUMNS, table)}
    assert live, f"table {table} does not exist"
    for expected in OWN_TABLES[table].columns:
        assert live.get(expected.name) == expected, f"{table}.{expected.name}"


@pytest.mark.parametrize("table", sorted(OWN_TABLES))
async def test_own_tables_keep_their_indexes_and_keys(pool: asyncpg.Pool, table: str) -> None:
    indexes = {
        row["indexname"]: _short_indexdef(row["indexdef"])
        for row in await pool.fetch(_INDEXES, table)
    }
    spec = OWN_TABLES[table]
    holder = f"{table}_default" if spec.partitioned else table
    keys = {row["conname"]: row["definition"] for row in await pool.fetch(_KEYS, holder)}
    for name, definition in spec.indexes.items():
        assert indexes.get(name) == definition, f"index {name}"
    assert {k: keys.get(k) for k in spec.keys} == spec.keys
