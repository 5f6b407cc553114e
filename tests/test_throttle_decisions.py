"""The throttle's decisions: counted on Check, added to Postgres by a flush."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.db import create_pool
from costguard.devstack import free_port
from costguard.throttle.decisions import DecisionRecorder
from tests.test_throttle import ALLOW, DEFER, Running, _check, _set_budget, throttle

__all__ = ["throttle"]  # the fixture


async def _totals(db: asyncpg.Pool) -> set[tuple[str, str, int]]:
    rows = await db.fetch("SELECT tier, action, decisions FROM throttle_decisions_daily")
    return {(r["tier"], r["action"], r["decisions"]) for r in rows}


async def test_check_decisions_are_flushed_to_both_tables(
    throttle: Running, db: asyncpg.Pool
) -> None:
    assert (await throttle.stub.Check(_check("pro", 100, user="u1"))).action == ALLOW
    assert (await throttle.stub.Check(_check("pro", 100, user="u1"))).action == ALLOW
    await _set_budget(db, throttle.app, "free", daily_cpu_ms_cap=50)  # below one estimate
    deferred = await throttle.stub.Check(_check("free", 100, user="u2"))
    assert deferred.action == DEFER
    assert await throttle.app.decisions.flush()
    today = datetime.now(throttle.app.throttle._config.core.timezone).date()
    assert await _totals(db) == {("pro", "ALLOW", 2), ("free", "DEFER", 1)}
    dates = await db.fetchval("SELECT array_agg(DISTINCT date) FROM throttle_decisions_daily")
    assert dates == [today]
    users = {
        (r["user_id"], r["tier"], r["action"], r["decisions"], r["last_reason"])
        for r in await db.fetch("SELECT * FROM throttle_user_decisions_daily")
    }
    assert users == {
        ("u1", "pro", "ALLOW", 2, "allowed: no cap applies"),
        ("u2", "free", "DEFER", 1, deferred.reason),
    }
    # a second flush adds to the rows
    await throttle.stub.Check(_check("free", 100, user="u2"))
    assert await throttle.app.decisions.flush()
    assert await _totals(db) == {("pro", "ALLOW", 2), ("free", "DEFER", 2)}


async def test_a_failed_flush_keeps_the_counts_for_the_next(db: asyncpg.Pool) -> None:
    dead = await create_pool(f"postgresql://costguard@127.0.0.1:{free_port()}/none", min_size=0)
    tz = ZoneInfo("UTC")
    down = DecisionRecorder(dead, tz)
    down.record("u1", "pro", "ALLOW", "")
    down.record("u1", "pro", "ALLOW", "")
    assert not await down.flush()
    assert not await down.flush()
    assert down.pending() == 2
    down._pool = db  # Postgres reachable again: the same recorder writes them
    assert await down.flush()
    assert down.pending() == 0
    assert await down.flush()  # nothing left: written once
    assert await _totals(db) == {("pro", "ALLOW", 2)}
    await dead.close()
