"""Issue 17's user page, alerts and CSV export, held to the raw rows the tests store.

Events go in through the real ingest (which prices each one) and the real rollup; every
expected figure here is computed from the stored event rows, budget_alerts rows and decision
rows themselves, never from what the gateway's own queries return.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import jsonschema
import pytest
from redis.asyncio import Redis

from costguard.common.counters import LiveCounters
from costguard.common.day_sheets import DaySheets
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.gateway.api_export import cell
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.gateway.dispatch import GIVE_UP_ATTEMPTS
from costguard.gateway.openapi import document
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.telemetry.ingest import Ingestor
from tests.events import cost, job, llm, ts

ADMIN = "admin-token-1"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
UTC_ZONE = ZoneInfo("UTC")
# Today for real: ingest adds only the wall clock's today to the live counters the caps read.
# The gateway's now is its noon (events up to a day ahead of the clock are accepted).
TODAY = datetime.now(UTC).date()
NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
FIRST, MIDDLE, LAST = TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY
RANGE = f"from={FIRST}&to={LAST}"
NO_CAP = 2**63 - 1


@pytest.fixture
async def gateway(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose today is NOW's date; no webhook, so no dispatcher touches the alerts."""
    env = {
        **service_env,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}",
        "COSTGUARD_TIERS": "free,pro",
    }
    app = create_app(GatewayConfig.from_env(env), clock=lambda: NOW)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def _at(days_back: int, hour: int, minute: int = 0) -> datetime:
    """``hour``:``minute`` of the day ``days_back`` days before today."""
    day = TODAY - timedelta(days=days_back)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _usd(value: Decimal) -> str:
    """Money as the API writes it: rounded once to 8 places, half away from zero; 0 as "0"."""
    rounded = value.quantize(Decimal("0.00000001"), ROUND_HALF_UP)
    return f"{rounded:f}" if rounded else "0"


def _conforms(body: Any, schema: str) -> None:
    root = {"$ref": f"#/components/schemas/{schema}", "components": document()["components"]}
    jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)


async def _store(
    db: asyncpg.Pool, redis: Redis, events: list[Any], *, roll_up: bool = True
) -> None:
    """Through the real ingest (today's events reach the live counters too), then the real
    rollup of every day the events are on (unless not ``roll_up``)."""
    sheets = DaySheets(seed=SeedPrices.from_env({}), aws=AwsPrices.from_env({}), tz=UTC_ZONE)
    ingestor = Ingestor(
        db, LiveCounters(redis), tiers=("free", "pro"), timezone=UTC_ZONE, sheets=sheets
    )
    result = await ingestor.store(events)
    assert (result.accepted, result.rejections) == (len(events), ())
    if not roll_up:
        return
    pricing = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
    days = await db.fetch(
        "SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date AS d FROM telemetry_llm_events"
        " UNION SELECT DISTINCT (coalesce(started_at, created_at) AT TIME ZONE 'UTC')::date"
        " FROM telemetry_job_events"
        " UNION SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM cost_events"
    )
    for row in days:
        await rollup_costs_for_date(db, row["d"], tz=UTC_ZONE, pricing=pricing)


def _job(user: str, at: datetime, **more: Any) -> Any:
    return job(user_id=user, tier="pro", started_at=ts(at), created_at=ts(at), **more)


def _llm(user: str, at: datetime, **more: Any) -> Any:
    return llm(user_id=user, tier="pro", created_at=ts(at), **more)


def _cost(user: str, at: datetime, **more: Any) -> Any:
    return cost(user_id=user, tier="pro", created_at=ts(at), **more)


async def _scenario(db: asyncpg.Pool, redis: Redis) -> None:
    """u1 over the range (nothing on its middle day), the period before, and before that; u2 on
    the same days; today's caps and decisions."""
    await _store(
        db,
        redis,
        [
            _job("u1", _at(2, 9), cpu_ms=2000, duration_ms=2500),
            _llm("u1", _at(2, 10), llm_model="gpt-4o-mini", input_tokens=1000, output_tokens=100),
            _cost("u1", _at(2, 11), event_type="ses_email", service="ses", quantity=2,
                  unit="emails"),
            _llm("u1", _at(0, 8), provider="openai", llm_model="gpt-4o", input_tokens=500,
                 output_tokens=50),
            _llm("u1", _at(0, 9), llm_model="gpt-4o-mini", input_tokens=2000, output_tokens=0,
                 success=False),
            # Priced $0 and estimated: each says why beside its price.
            _llm("u1", _at(0, 9, 10), llm_model="gpt-4o-mini", input_tokens=800,
                 output_tokens=80, cache_hit=True),
            _llm("u1", _at(0, 9, 20), llm_model="gpt-4o-mini", input_tokens=0, output_tokens=0,
                 usage_reported=False),
            _cost("u1", _at(0, 9, 30), event_type="s3_operation", service="s3_put",
                  quantity=3, unit="requests"),
            _cost("u1", _at(0, 9, 45), event_type="s3_operation", service="s3_mystery",
                  quantity=1, unit="requests"),
            _job("u1", _at(0, 10), cpu_ms=700, job_name="=SUM(A1)", domain="=sport"),
            _job("u1", _at(4, 10), cpu_ms=1000),  # the period before
            _llm("u1", _at(7, 10), input_tokens=9000),  # before both
            _job("u2", _at(0, 11), cpu_ms=50),
            _llm("u2", _at(0, 11), input_tokens=300, output_tokens=30),
            _job("@evil", _at(1, 11), cpu_ms=10),
        ],
    )  # fmt: skip
    await db.executemany(
        "INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap, "
        "llm_input_tokens_cap, llm_output_tokens_cap) VALUES ($1, $2, $3, $4, $5)",
        [
            ("user:u1", NO_CAP, 4, NO_CAP, NO_CAP),
            ("pro", NO_CAP, NO_CAP, 10_000, NO_CAP),
            ("global", NO_CAP, 100, NO_CAP, NO_CAP),  # applies to everyone, not the user's
            ("user:u2", NO_CAP, 1, NO_CAP, NO_CAP),
            ("free", NO_CAP, 3, NO_CAP, NO_CAP),
        ],
    )
    await db.executemany(
        "INSERT INTO throttle_user_decisions_daily "
        "(user_id, date, tier, action, decisions, last_reason, last_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            ("u1", FIRST, "pro", "ALLOW", 5, "within budget", _at(2, 11)),
            ("u1", LAST, "pro", "DENY", 2, "user:u1 jobs at 100%", _at(0, 10)),
            ("u1", LAST, "pro", "ALLOW", 3, None, _at(0, 9)),
            ("u1", TODAY - timedelta(days=6), "pro", "ALLOW", 1, "within budget", _at(6, 1)),
            ("u2", LAST, "pro", "ALLOW", 1, "within budget", _at(0, 11)),
        ],
    )


async def _raw_events(db: asyncpg.Pool, user: str) -> list[dict[str, Any]]:
    """The user's stored events of every kind, with the instant each counts on."""
    jobs = await db.fetch(
        "SELECT event_id, coalesce(started_at, created_at) AS at, job_name, cost_usd, cpu_ms,"
        " duration_ms, success, NULL AS unpriced_reason FROM telemetry_job_events"
        " WHERE user_id = $1",
        user,
    )
    calls = await db.fetch(
        "SELECT event_id, created_at AS at, provider, llm_model, cost_usd, input_tokens,"
        " output_tokens, success, cache_hit, usage_reported, unpriced_reason"
        " FROM telemetry_llm_events WHERE user_id = $1",
        user,
    )
    costs = await db.fetch(
        "SELECT event_id, created_at AS at, service, event_type, cost_usd, quantity, unit,"
        " unpriced_reason FROM cost_events WHERE user_id = $1",
        user,
    )
    return (
        [{"kind": "job", **dict(r)} for r in jobs]
        + [{"kind": "llm", **dict(r)} for r in calls]
        + [{"kind": "cost", **dict(r)} for r in costs]
    )


def _in(rows: list[dict[str, Any]], first: date, last: date) -> list[dict[str, Any]]:
    return [r for r in rows if first <= r["at"].astimezone(UTC).date() <= last]


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cost_usd": _usd(sum((r["cost_usd"] for r in rows), Decimal(0))),
        "jobs": sum(r["kind"] == "job" for r in rows),
        "ai_calls": sum(r["kind"] == "llm" for r in rows),
        "tokens_in": sum(r.get("input_tokens") or 0 for r in rows),
        "tokens_out": sum(r.get("output_tokens") or 0 for r in rows),
    }


def _price_note(r: dict[str, Any]) -> str | None:
    """Why the price is not the library's own for reported usage, from the stored flags."""
    if r["cost_usd"] is None:
        return "not priced yet"
    if r.get("cache_hit"):
        return "cache hit: not billed"
    if r.get("usage_reported") is False:
        return "usage not reported: tokens estimated"
    return r["unpriced_reason"] or None


def _expected_event(r: dict[str, Any]) -> dict[str, Any]:
    if r["kind"] == "job":
        cpu, run = r["cpu_ms"] or 0, r["duration_ms"] or 0
        name, detail = r["job_name"], f"{cpu:,} ms CPU, {run:,} ms run"
    elif r["kind"] == "llm":
        name = f"{r['provider']}/{r['llm_model']}"
        detail = f"{r['input_tokens']:,} in / {r['output_tokens']:,} out tokens"
    else:
        name, detail = (
            f"{r['service']}/{r['event_type']}",
            f"{r['quantity'].normalize():f} {r['unit']}",
        )
    return {
        "kind": r["kind"],
        "event_id": str(r["event_id"]),
        "at": r["at"].isoformat(),
        "name": name,
        "cost_usd": _usd(r["cost_usd"]),
        "detail": detail,
        "success": r.get("success", True),
        "price_note": _price_note(r),
    }


async def test_a_users_page_adds_up_their_stored_events(
    gateway: httpx.AsyncClient, db: asyncpg.Pool, redis_client: Redis
) -> None:
    await _scenario(db, redis_client)
    reply = await gateway.get(f"/api/admin/cost/users/u1?{RANGE}", headers=AS_ADMIN)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    _conforms(body, "UserDetail")
    raw = await _raw_events(db, "u1")
    assert all(r["cost_usd"] is not None for r in raw)  # ingest priced every event
    now = _in(raw, FIRST, LAST)
    before = _in(raw, TODAY - timedelta(days=5), TODAY - timedelta(days=3))
    assert {k: body[k] for k in ("user_id", "tier", "from", "to", "days", "partial_date")} == {
        "user_id": "u1",
        "tier": "pro",
        "from": FIRST.isoformat(),
        "to": LAST.isoformat(),
        "days": 3,
        "partial_date": LAST.isoformat(),
    }
    assert body["totals"] == _totals(now)
    assert body["previous_totals"] == _totals(before)
    cur = sum((r["cost_usd"] for r in now), Decimal(0))
    was = sum((r["cost_usd"] for r in before), Decimal(0))
    assert body["change"]["cost_usd"] == pytest.approx(float((cur - was) / was))
    assert body["days_series"] == [
        {"date": d.isoformat(), **_totals(_in(raw, d, d))} for d in (FIRST, MIDDLE, LAST)
    ]
    assert body["days_series"][1] == {
        "date": MIDDLE.isoformat(), "cost_usd": "0", "jobs": 0, "ai_calls": 0, "tokens_in": 0,
        "tokens_out": 0,
    }  # fmt: skip
    models: dict[str, list[Any]] = defaultdict(lambda: [Decimal(0), 0, 0, 0])
    services: dict[str, list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    for r in now:
        if r["kind"] == "llm":
            m = models[f"{r['provider']}/{r['llm_model']}"]
            m[0] += r["cost_usd"]
            m[1] += r["input_tokens"]
            m[2] += r["output_tokens"]
            m[3] += 1
        elif r["kind"] == "cost":
            services[r["service"]][0] += r["cost_usd"]
            services[r["service"]][1] += 1
    assert body["by_model"] == [
        {"key": k, "cost_usd": _usd(c), "tokens_in": i, "tokens_out": o, "calls": n}
        for k, (c, i, o, n) in sorted(models.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]
    assert len(body["by_model"]) == 2
    assert body["by_service"] == [
        {"key": k, "cost_usd": _usd(c), "events": n}
        for k, (c, n) in sorted(services.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]
    newest = sorted(now, key=lambda r: (r["at"], str(r["event_id"])), reverse=True)
    assert body["recent_events"] == [_expected_event(r) for r in newest]
    failed = [e["at"] for e in body["recent_events"] if not e["success"]]
    assert failed == [_at(0, 9).isoformat()]  # the failed call
    # Today's caps on u1: their tier's (the pro tier's input tokens today, u2's too) and
    # their own (u1's jobs today); not the global one, nor another user's or tier's.
    today = [r for r in await _raw_events(db, "u1") + await _raw_events(db, "u2")
             if r["at"].date() == LAST]  # fmt: skip
    pro_tokens = sum(r.get("input_tokens") or 0 for r in today)
    u1_jobs = sum(r["kind"] == "job" for r in _in(raw, LAST, LAST))
    assert body["caps"] == [
        {"scope": "pro", "metric": "llm_input_tokens", "cap": "10000", "used": str(pro_tokens),
         "fraction": pytest.approx(pro_tokens / 10_000)},
        {"scope": "user:u1", "metric": "jobs", "cap": "4", "used": str(u1_jobs),
         "fraction": pytest.approx(u1_jobs / 4)},
    ]  # fmt: skip
    assert body["decisions"] == [
        {"date": LAST.isoformat(), "tier": "pro", "action": "DENY", "decisions": 2,
         "last_reason": "user:u1 jobs at 100%", "last_at": _at(0, 10).isoformat()},
        {"date": LAST.isoformat(), "tier": "pro", "action": "ALLOW", "decisions": 3,
         "last_reason": "", "last_at": _at(0, 9).isoformat()},
        {"date": FIRST.isoformat(), "tier": "pro", "action": "ALLOW", "decisions": 5,
         "last_reason": "within budget", "last_at": _at(2, 11).isoformat()},
    ]  # fmt: skip
    # The page's days are the rollup's: the top users show the same cost for u1.
    top = (await gateway.get(f"/api/admin/cost/users?{RANGE}", headers=AS_ADMIN)).json()
    assert next(u for u in top["users"] if u["user_id"] == "u1")["cost_usd"] == _usd(cur)


async def test_a_users_newest_events_are_the_newest_50(
    gateway: httpx.AsyncClient, db: asyncpg.Pool, redis_client: Redis
) -> None:
    start = _at(1, 0)
    events = [_llm("busy", start + timedelta(minutes=3 * i)) for i in range(30)]
    events += [_job("busy", start + timedelta(minutes=3 * i + 1)) for i in range(20)]
    events += [_cost("busy", start + timedelta(minutes=3 * i + 2), event_type="ses_email",
                     service="ses", quantity=1, unit="emails") for i in range(15)]  # fmt: skip
    await _store(db, redis_client, events)
    body = (await gateway.get(f"/api/admin/cost/users/busy?{RANGE}", headers=AS_ADMIN)).json()
    raw = await _raw_events(db, "busy")
    assert len(raw) == 65
    newest = sorted(raw, key=lambda r: (r["at"], str(r["event_id"])), reverse=True)[:50]
    assert [(e["kind"], e["event_id"]) for e in body["recent_events"]] == [
        (r["kind"], str(r["event_id"])) for r in newest
    ]
    assert body["totals"]["jobs"] == 20  # the cap is on the list, not the figures


async def test_a_user_never_seen_is_404_and_bad_input_400(
    gateway: httpx.AsyncClient, db: asyncpg.Pool, redis_client: Redis
) -> None:
    unknown = await gateway.get("/api/admin/cost/users/nobody", headers=AS_ADMIN)
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "user_id"
    for path, field in [
        ("/api/admin/cost/users/a%20b", "user_id"),
        (f"/api/admin/cost/users/{'x' * 65}", "user_id"),
        ("/api/admin/cost/users/nobody?days=93", "days"),
        (f"/api/admin/cost/users/nobody?from={LAST}&to={FIRST}", "from"),
        (f"/api/admin/cost/users/nobody?from={LAST}&days=3", "days"),
    ]:
        reply = await gateway.get(path, headers=AS_ADMIN)
        assert (reply.status_code, reply.json()["field"]) == (400, field), path
    # Seen only by the throttle: a page with its tier and nothing else.
    await db.execute(
        "INSERT INTO throttle_user_decisions_daily "
        "(user_id, date, tier, action, decisions, last_reason, last_at) "
        "VALUES ('quiet', $1, 'free', 'DENY', 1, 'free jobs at 100%', $2)",
        LAST,
        _at(0, 1),
    )
    quiet = (await gateway.get("/api/admin/cost/users/quiet?days=1", headers=AS_ADMIN)).json()
    assert (quiet["tier"], quiet["totals"]["cost_usd"], len(quiet["decisions"])) == ("free", "0", 1)
    # Seen only by a cost event naming no tier, not rolled up yet: the rollup's tier for it.
    await _store(db, redis_client, [cost(user_id="fresh", created_at=ts(_at(0, 1)))], roll_up=False)
    fresh = (await gateway.get("/api/admin/cost/users/fresh?days=1", headers=AS_ADMIN)).json()
    assert (fresh["tier"], fresh["totals"]["cost_usd"]) == ("unattributed", "0")
    assert [e["kind"] for e in fresh["recent_events"]] == ["cost"]
    # Its event is looked for in the range's days only (not every partition of retention).
    earlier = f"/api/admin/cost/users/fresh?from={FIRST}&to={MIDDLE}"
    assert (await gateway.get(earlier, headers=AS_ADMIN)).status_code == 404
    assert (await gateway.get("/api/admin/cost/users/u1")).status_code == 401


async def _alerts(db: asyncpg.Pool) -> list[asyncpg.Record]:
    """Alerts of every status, on days in and out of the range."""
    rows = [
        # day, scope, metric, threshold, kind, used, cap, delivered, attempts, error, created
        (FIRST, "global", "jobs", "0.8", "crossed", "9", "10", _at(2, 1), 1, None, _at(2, 1)),
        (FIRST, "global", "jobs", "0.8", "resolved", "2", "10", _at(1, 0), 2, None, _at(1, 0)),
        (LAST, "pro", "cost_usd", "1.0", "crossed", "12.5", "12.5", None, GIVE_UP_ATTEMPTS - 1,
         "HTTP 503", _at(0, 2)),
        (LAST, "user:u1", "jobs", "1.0", "crossed", "4", "4", None, GIVE_UP_ATTEMPTS,
         "=HYPERLINK(\"http://x\")", _at(0, 3)),
        (LAST, "user:u1", "jobs", "0.8", "crossed", "3.2", "4", None, 0, None, _at(0, 4)),
        (TODAY - timedelta(days=11), "global", "jobs", "0.8", "crossed", "9", "10", None, 0, None,
         _at(11, 1)),
    ]  # fmt: skip
    await db.executemany(
        "INSERT INTO budget_alerts (day, apply_scope, metric, threshold, kind, used, cap,"
        " delivered_at, delivery_attempts, last_error, created_at)"
        " VALUES ($1, $2, $3, $4::numeric, $5, $6::numeric, $7::numeric, $8, $9, $10, $11)",
        rows,
    )
    return await db.fetch("SELECT * FROM budget_alerts ORDER BY created_at DESC, id DESC")


def _status(row: asyncpg.Record) -> str:
    if row["delivered_at"] is not None:
        return "sent"
    return "failed" if row["delivery_attempts"] >= GIVE_UP_ATTEMPTS else "pending"


async def test_alerts_by_status_with_counts_over_the_range(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    stored = [r for r in await _alerts(db) if FIRST <= r["day"] <= LAST]
    reply = await gateway.get(f"/api/admin/cost/alerts?{RANGE}", headers=AS_ADMIN)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    _conforms(body, "Alerts")
    counts = {s: sum(_status(r) == s for r in stored) for s in ("sent", "failed", "pending")}
    counts["resolved"] = sum(r["kind"] == "resolved" for r in stored)
    assert body["counts"] == counts == {"sent": 2, "failed": 1, "pending": 2, "resolved": 1}
    assert [a["id"] for a in body["alerts"]] == [r["id"] for r in stored]  # newest first
    first = body["alerts"][0]
    assert first == {
        "id": stored[0]["id"], "day": LAST.isoformat(), "scope": "user:u1", "metric": "jobs",
        "threshold": "0.8", "kind": "crossed", "used": "3.2", "cap": "4", "status": "pending",
        "created_at": _at(0, 4).isoformat(), "delivered_at": None, "attempts": 0,
        "last_error": None,
    }  # fmt: skip
    assert [a["status"] for a in body["alerts"]] == [_status(r) for r in stored]
    for status in ("sent", "failed", "pending"):
        only = (
            await gateway.get(f"/api/admin/cost/alerts?{RANGE}&status={status}", headers=AS_ADMIN)
        ).json()
        assert [a["id"] for a in only["alerts"]] == [
            r["id"] for r in stored if _status(r) == status
        ]
        assert only["counts"] == counts  # the counts ignore the filter
    limited = (
        await gateway.get(f"/api/admin/cost/alerts?{RANGE}&limit=2", headers=AS_ADMIN)
    ).json()
    assert [a["id"] for a in limited["alerts"]] == [r["id"] for r in stored[:2]]
    march_1 = (
        await gateway.get(
            f"/api/admin/cost/alerts?from={_at(11, 0).date()}&to={_at(11, 0).date()}",
            headers=AS_ADMIN,
        )
    ).json()
    assert (len(march_1["alerts"]), march_1["counts"]["pending"]) == (1, 1)
    for query, field in [("status=lost", "status"), ("limit=501", "limit"), ("days=0", "days")]:
        bad = await gateway.get(f"/api/admin/cost/alerts?{query}", headers=AS_ADMIN)
        assert (bad.status_code, bad.json()["field"]) == (400, field)


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _cell(value: Any) -> str:
    """What a JSON value must be in the CSV: text a spreadsheet would run gets a ' first."""
    if value is None:
        return ""
    if value is True or value is False:
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(value):
        return f"'{value}"
    return str(value)


# table, its CSV query, the JSON route and query holding its rows, and how to find them.
EXPORTS = [
    ("top_users", "limit=2", "users", "limit=2", lambda b: b["users"]),
    ("cost_by_day", "", "summary", "", None),
    ("breakdown", "by=domain", "breakdown", "by=domain", lambda b: b["rows"]),
    ("decisions", "tier=pro", "decisions", "tier=pro", lambda b: b["series"]),
    ("alerts", "status=failed", "alerts", "status=failed", lambda b: b["alerts"]),
    ("unpriced", "", "summary", "", lambda b: b["unpriced"]),
    ("user_days", "user=u1", "users/u1", "", lambda b: b["days_series"]),
    ("user_models", "user=u1", "users/u1", "", lambda b: b["by_model"]),
    ("user_services", "user=u1", "users/u1", "", lambda b: b["by_service"]),
    ("user_events", "user=u1", "users/u1", "", lambda b: b["recent_events"]),
]


async def test_every_csv_export_is_its_json_routes_figures_cell_for_cell(
    gateway: httpx.AsyncClient, db: asyncpg.Pool, redis_client: Redis
) -> None:
    await _scenario(db, redis_client)
    await _alerts(db)
    await db.executemany(
        "INSERT INTO throttle_decisions_daily (date, tier, action, decisions) "
        "VALUES ($1, $2, $3, $4)",
        [(FIRST, "pro", "ALLOW", 7), (LAST, "pro", "DENY", 2), (LAST, "free", "DEFER", 1)],
    )
    assert sorted(t for t, *_ in EXPORTS) == sorted(
        document()["paths"]["/api/admin/cost/export.csv"]["get"]["parameters"][0]["schema"]["enum"]
    )  # every table the export offers
    for table, csv_query, route, json_query, rows_of in EXPORTS:
        reply = await gateway.get(
            f"/api/admin/cost/export.csv?table={table}&{RANGE}&{csv_query}", headers=AS_ADMIN
        )
        assert reply.status_code == 200, (table, reply.text)
        assert reply.headers["content-type"] == "text/csv; charset=utf-8"
        assert reply.headers["content-disposition"] == (
            f'attachment; filename="costguard-{table}-{FIRST}-{LAST}.csv"'
        )
        body = (await gateway.get(f"/api/admin/cost/{route}?{RANGE}&{json_query}",
                                  headers=AS_ADMIN)).json()  # fmt: skip
        if rows_of is None:  # the cost by tier of each date, and the date's cost card total
            totals = {p["date"]: p["value"] for p in body["sparklines"]["cost_usd"]}
            rows = [{**r, "total": totals[r["date"]]} for r in body["series"]["cost_by_tier"]]
        else:
            rows = rows_of(body)
        assert rows, table  # each table has rows to compare
        parsed = list(csv.reader(io.StringIO(reply.text)))
        assert parsed[0] == list(rows[0]), table
        assert parsed[1:] == [[_cell(v) for v in r.values()] for r in rows], table
    # The text a spreadsheet would run is quoted; numbers (negative too) never are.
    top = await gateway.get(f"/api/admin/cost/export.csv?table=top_users&{RANGE}", headers=AS_ADMIN)
    assert "'@evil" in [r[0] for r in csv.reader(io.StringIO(top.text))]
    events = await gateway.get(
        f"/api/admin/cost/export.csv?table=user_events&user=u1&{RANGE}", headers=AS_ADMIN
    )
    assert "'=SUM(A1)" in [r[3] for r in csv.reader(io.StringIO(events.text))]
    domains = await gateway.get(
        f"/api/admin/cost/export.csv?table=breakdown&by=domain&{RANGE}", headers=AS_ADMIN
    )
    assert "'=sport" in [r[0] for r in csv.reader(io.StringIO(domains.text))]
    failed = await gateway.get(
        f"/api/admin/cost/export.csv?table=alerts&status=failed&{RANGE}", headers=AS_ADMIN
    )
    assert list(csv.reader(io.StringIO(failed.text)))[1][-1] == '\'=HYPERLINK("http://x")'
    assert [cell(v) for v in ("-0.5", "-x", "+1", "\tx", "\rx", "@", "a=b")] == [
        "-0.5",
        "'-x",
        "'+1",
        "'\tx",
        "'\rx",
        "'@",
        "a=b",
    ]


async def test_a_bad_export_is_400_naming_the_field(gateway: httpx.AsyncClient) -> None:
    for query, status, field in [
        ("", 400, "table"),
        ("table=everything", 400, "table"),
        ("table=user_days", 400, "user"),
        ("table=user_events&user=a%20b", 400, "user"),
        ("table=user_models&user=nobody", 404, "user"),
        ("table=breakdown", 400, "by"),
        ("table=alerts&status=lost", 400, "status"),
        ("table=top_users&limit=0", 400, "limit"),
        ("table=cost_by_day&days=93", 400, "days"),
    ]:
        reply = await gateway.get(f"/api/admin/cost/export.csv?{query}", headers=AS_ADMIN)
        assert (reply.status_code, reply.json()["field"]) == (status, field), query
    assert (await gateway.get("/api/admin/cost/export.csv?table=alerts")).status_code == 401
