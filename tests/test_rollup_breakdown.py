"""cost_breakdown_daily: a day's cost by model, service and domain, kept by the rollup."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from costguard.common.event_ranges import MAXIMUM
from tests.test_rollup import DAY, NOON, cloud, job, rollup

_Rows = dict[tuple[str, str], tuple[Decimal, int, int, int, int]]


async def llm_call(
    db: asyncpg.Pool, user: str, model: str, domain: str, tokens: tuple[int, int]
) -> None:
    provider, name = model.split("/", 1)
    await db.execute(
        "INSERT INTO telemetry_llm_events (event_id, user_id, tier, domain, provider, llm_model, "
        "context_type, input_tokens, output_tokens, created_at) "
        "VALUES ($1, $2, 'pro', $3, $4, $5, 'chat', $6, $7, $8)",
        uuid.uuid4(), user, domain, provider, name, tokens[0], tokens[1], NOON,
    )  # fmt: skip


async def breakdown(db: asyncpg.Pool) -> _Rows:
    return {
        (r["dimension"], r["key"]): (
            r["cost_usd"],
            r["tokens_in"],
            r["tokens_out"],
            r["calls"],
            r["events"],
        )
        for r in await db.fetch("SELECT * FROM cost_breakdown_daily WHERE date = $1", DAY)
    }


async def expected(db: asyncpg.Pool) -> _Rows:
    """The rows computed in Python from the raw events' stored prices."""
    rows: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [Decimal(0), 0, 0, 0, 0])

    def add(key: tuple[str, str], cost: Decimal | None, tin: int, tout: int, calls: int) -> None:
        row = rows[key]
        row[0] += cost or 0
        row[1] += tin
        row[2] += tout
        row[3] += calls
        row[4] += 1

    for e in await db.fetch("SELECT * FROM telemetry_job_events"):
        add(("service", "compute"), e["cost_usd"], 0, 0, 0)
        add(("domain", e["domain"]), e["cost_usd"], 0, 0, 0)
    for e in await db.fetch("SELECT * FROM telemetry_llm_events"):
        tin = min(max(e["input_tokens"], 0), MAXIMUM["input_tokens"])
        tout = min(max(e["output_tokens"], 0), MAXIMUM["output_tokens"])
        for key in [
            ("model", f"{e['provider']}/{e['llm_model']}"),
            ("service", e["provider"]),
            ("domain", e["domain"]),
        ]:
            add(key, e["cost_usd"], tin, tout, 1)
    for e in await db.fetch("SELECT * FROM cost_events"):
        add(("service", e["service"]), e["cost_usd"], 0, 0, 0)
        model = (e["metadata"] or {}).get("model")
        if e["cost_category"] == "ai" and isinstance(model, str):
            add(("model", f"{e['service']}/{model}"), e["cost_usd"], 0, 0, 1)
    return {key: (row[0], row[1], row[2], row[3], row[4]) for key, row in rows.items()}


async def seed(db: asyncpg.Pool, step: int = 0) -> None:
    await job(db, f"u{step}", "free", 1000 + step, rows_read=1500)
    await job(db, "u2", "pro", 250, at=NOON + timedelta(minutes=step))
    await llm_call(db, "u1", "openai/gpt-4o", "audio", (10_000 + step, 1_500))
    await llm_call(db, "u2", "openai/gpt-4o-mini", "search", (2_000, 300 + step))
    await llm_call(db, "u3", "gemini/gemini-2.5-flash", "search", (4_000, 800))
    await cloud(db, "s3_operation", "s3_get", str(3 + step), "requests", user_id="u1")
    await cloud(db, "lambda_invocation", "lambda", "2", "invocations", user_id="u2")
    speech = {"model": "gemini-2.5-flash-preview-tts", "input_tokens": 400, "output_tokens": 12_000}
    await cloud(db, "ai_api_call", "gemini_tts", "12400", "tokens", metadata=speech)


async def test_full_rollup_fills_the_breakdown_and_it_adds_up_to_the_day(
    db: asyncpg.Pool,
) -> None:
    await seed(db)
    await rollup(db)
    rows = await breakdown(db)
    assert rows == await expected(db)
    keys = {dimension: sorted(k for d, k in rows if d == dimension) for dimension, _ in rows}
    assert keys == {
        "model": [
            "gemini/gemini-2.5-flash",
            "gemini_tts/gemini-2.5-flash-preview-tts",
            "openai/gpt-4o",
            "openai/gpt-4o-mini",
        ],
        "service": ["compute", "gemini", "gemini_tts", "lambda", "openai", "s3_get"],
        "domain": ["audio", "search"],
    }
    # lambda invocations are priced by duration, not counted here: 0
    assert sorted(k for k, v in rows.items() if v[0] == 0) == [("service", "lambda")]
    day = await db.fetchrow("SELECT * FROM cost_global_daily WHERE date = $1", DAY)
    assert day is not None

    def total(dimension: str, index: int) -> Any:
        return sum((v[index] for (d, _), v in rows.items() if d == dimension), Decimal(0))

    costs = {
        "job": await db.fetchval("SELECT sum(cost_usd) FROM telemetry_job_events"),
        "cost": await db.fetchval("SELECT sum(cost_usd) FROM cost_events"),
        "ai_cost": await db.fetchval(
            "SELECT sum(cost_usd) FROM cost_events WHERE cost_category = 'ai'"
        ),
        "ai_events": await db.fetchval(
            "SELECT count(*) FROM cost_events WHERE cost_category = 'ai'"
        ),
    }
    storage = day["cost_usd"] - total("service", 0)
    assert storage >= 0  # the S3 storage held: not an event, the service breakdown's rest
    # model: the rest is the jobs and the cost events that name no model
    assert (
        total("model", 0) + costs["job"] + costs["cost"] - costs["ai_cost"] + storage
        == (day["cost_usd"])
    )
    # domain: the rest is the cost events
    assert total("domain", 0) + costs["cost"] + storage == day["cost_usd"]
    assert total("domain", 3) == day["ai_calls"]
    assert total("model", 3) == day["ai_calls"] + costs["ai_events"]
    for dimension in ("model", "service", "domain"):
        assert (total(dimension, 1), total(dimension, 2)) == (day["tokens_in"], day["tokens_out"])

    # rolled up again: the same rows, not twice
    await rollup(db)
    assert await breakdown(db) == rows


async def test_refresh_adds_the_new_events_as_a_full_rollup_would(db: asyncpg.Pool) -> None:
    await seed(db)
    await rollup(db)
    await seed(db, step=1)
    # a new domain (a new model would extend the day's sheet: a full rollup)
    await llm_call(db, "u4", "gemini/gemini-2.5-flash", "video", (1_000, 100))
    refreshed = await rollup(db, refresh=True)
    assert refreshed.incremental
    after_refresh = await breakdown(db)
    assert ("domain", "video") in after_refresh
    await rollup(db)
    assert await breakdown(db) == after_refresh == await expected(db)
