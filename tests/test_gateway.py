"""The admin API: auth on every route, sessions, budgets to the throttle, alerts by webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import jsonschema
import pytest
import uvicorn
from grpc import aio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from costguard.common.day_sheets import DaySheets
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.devstack import free_port
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.gateway.dispatch import GIVE_UP_ATTEMPTS
from costguard.gateway.openapi import document
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.telemetry.ingest import Ingestor
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import ThrottleApp
from costguard.throttle.server import build as build_throttle
from costguard.v1 import throttle_pb2, throttle_pb2_grpc
from tests.events import cost, job, llm, ts
from tests.processes import poll_until

ADMIN, VIEWER, SECRET = "admin-token-1", "viewer-token-1", "webhook-secret"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Receiver:
    """A local webhook receiver that checks our signature."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0
    bad_signatures: int = 0


def _sheets(tz: ZoneInfo) -> DaySheets:
    return DaySheets(seed=SeedPrices.from_env({}), aws=AwsPrices.from_env({}), tz=tz)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    found = Receiver(f"http://127.0.0.1:{port}/hook")

    async def hook(request: Request) -> Response:
        body = await request.body()
        timestamp = request.headers["x-costguard-timestamp"]
        expected = (
            "v1="
            + hmac.new(
                SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
        )
        if not hmac.compare_digest(expected, request.headers["x-costguard-signature"]):
            found.bad_signatures += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if found.fail_first > 0:
            found.fail_first -= 1
            return JSONResponse({"error": "try later"}, status_code=503)
        found.received.append(json.loads(body))
        return JSONResponse({"ok": True})

    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_config=None,
        )
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await poll_until(started, interval_s=0.01)  # uvicorn offers no start event to await
    yield found
    server.should_exit = True
    await task


@pytest.fixture
async def gateway_app(
    db: asyncpg.Pool, service_env: dict[str, str], receiver: Receiver
) -> AsyncIterator[Starlette]:
    env = {
        **service_env,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)},dash:viewer:{hash_token(VIEWER)}",
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_WEBHOOK_SECRET": SECRET,
        "ALERT_DISPATCH_SECONDS": "3600",
        "GATEWAY_SESSION_SECRET": "session-secret",
    }
    app = create_app(GatewayConfig.from_env(env))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def gateway(gateway_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


ADMIN_ROUTES = [
    ("GET", "/api/admin/cost/summary?days=7"),
    ("GET", "/api/admin/cost/users?days=7"),
    ("GET", "/api/admin/cost/users/u1?days=7"),
    ("GET", "/api/admin/cost/breakdown?by=model"),
    ("GET", "/api/admin/cost/decisions"),
    ("GET", "/api/admin/cost/alerts"),
    ("GET", "/api/admin/cost/export.csv?table=top_users"),
    ("GET", "/api/admin/cost/budgets"),
    ("POST", "/api/admin/cost/budgets"),
    ("POST", "/api/admin/cost/alert:test"),
    ("GET", "/api/admin/cost/episodes/ep1"),
    ("POST", "/api/admin/cost/episodes/ep1/recalculate"),
    ("GET", "/api/admin/cost/podcasts/p1/episodes"),
    ("GET", "/api/admin/cost/daily"),
    ("GET", "/api/admin/cost/monthly"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_every_admin_route_needs_credentials_and_the_admin_role(
    gateway: httpx.AsyncClient, method: str, path: str
) -> None:
    anonymous = await gateway.request(method, path)
    viewer = await gateway.request(method, path, headers={"Authorization": f"Bearer {VIEWER}"})
    # From the dashboard's own origin, so that a write gets past the cross-site check.
    forged = await gateway.request(
        method,
        path,
        headers={
            "cookie": "costguard_session=bm9ib2R5OmFkbWluOjk5OTk5OTk5OTk.xx",
            "origin": "http://gateway",
        },
    )
    assert (anonymous.status_code, viewer.status_code, forged.status_code) == (401, 403, 401)
    assert "error" in anonymous.json()
    odd = await gateway.request(
        method,
        path,
        headers={
            b"cookie": "costguard_session=bm9ib2R5.x\u00e9".encode("latin-1"),
            b"origin": b"http://gateway",
        },
    )
    assert odd.status_code == 401  # a non-ASCII signature is a bad cookie, not a 500


async def test_signing_in_sets_a_strict_httponly_session_cookie(gateway: httpx.AsyncClient) -> None:
    bad = await gateway.post("/api/admin/session", json={"token": "nope"})
    assert bad.status_code == 401
    reply = await gateway.post("/api/admin/session", json={"token": ADMIN})
    assert reply.json() == {"name": "ops", "role": "admin"}
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert (await gateway.get("/api/admin/me")).json()["name"] == "ops"
    assert (await gateway.get("/api/admin/cost/summary?days=30")).status_code == 200
    signed_out = await gateway.delete("/api/admin/session", headers={"Origin": "http://gateway"})
    assert signed_out.status_code == 200
    assert (await gateway.get("/api/admin/cost/summary")).status_code == 401


async def test_summary_and_users_return_data(gateway: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    today = datetime.now(UTC).date()
    await db.execute(
        "INSERT INTO cost_global_daily "
        "(date, jobs, ai_calls, cost_usd, tier_breakdown_json, unpriced_json) "
        "VALUES ($1, 3, 1, 2.5, $2, $3)",
        today,
        {"pro": {"cost_usd": "2.00000000"}, "free": {"cost_usd": "0.50000000"}},
        {
            "llm:openai/house": {"cost_usd": "0.25", "events": 4},  # rolled up before reasons
            "gemini_txt:ai_api_call": {
                "cost_usd": "0.00000000",
                "events": 2,
                "reason": "unknown service 'gemini_txt' for event type 'ai_api_call'",
            },
        },
    )
    await db.execute(
        "INSERT INTO cost_user_daily (user_id, date, tier, jobs, ai_calls, cost_usd) "
        "VALUES ('big', $1, 'pro', 2, 1, 2.0), ('small', $1, 'free', 1, 0, 0.5)",
        today,
    )
    summary = (await gateway.get("/api/admin/cost/summary?days=7", headers=AS_ADMIN)).json()
    assert summary["cards"]["cost_usd"] == "2.50000000"
    assert summary["series"]["cost_by_tier"][-1]["pro"] == "2.00000000"
    assert summary["unpriced"] == [
        {
            "item": "llm:openai/house",
            "cost_usd": "0.25000000",
            "share": 0.1,
            "events": 4,
            "reason": "",
        },
        {
            "item": "gemini_txt:ai_api_call",
            "cost_usd": "0",
            "share": 0.0,
            "events": 2,
            "reason": "unknown service 'gemini_txt' for event type 'ai_api_call'",
        },
    ]
    assert Decimal(summary["forecast"]["month_to_date_cost_usd"]) == Decimal("2.5")
    users = (await gateway.get("/api/admin/cost/users?days=7&limit=1", headers=AS_ADMIN)).json()[
        "users"
    ]
    assert [(u["user_id"], u["tier"], u["cost_usd"]) for u in users] == [
        ("big", "pro", "2.00000000")
    ]


async def test_me_names_the_reporting_time_zone_and_its_today(
    gateway: httpx.AsyncClient,
) -> None:
    me = (await gateway.get("/api/admin/me", headers=AS_ADMIN)).json()
    assert (me["name"], me["timezone"]) == ("ops", "UTC")  # the suite's reporting zone
    assert me["today"] == datetime.now(UTC).date().isoformat()
    _conforms(me, "Me")


async def test_the_summary_compares_its_range_with_the_period_before(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    """Three days from 2025-03-10 against the three days before them (03-07 .. 03-09)."""
    for day, jobs, cost_usd in [
        ("2025-03-07", 2, "0.1"),
        ("2025-03-09", 2, "0.200000001"),  # the previous period: 4 jobs, $0.300000001
        ("2025-03-10", 3, "0.3"),
        ("2025-03-12", 3, "0.300000002"),  # this one: 6 jobs, $0.600000002
        ("2025-03-13", 50, "9"),  # after the range
    ]:
        await db.execute(
            "INSERT INTO cost_global_daily (date, jobs, ai_calls, cost_usd, tier_breakdown_json)"
            " VALUES ($1, $2, 0, $3::numeric, '{}')",
            date.fromisoformat(day),
            jobs,
            cost_usd,
        )
    reply = await gateway.get(
        "/api/admin/cost/summary?from=2025-03-10&to=2025-03-12", headers=AS_ADMIN
    )
    assert reply.status_code == 200, reply.text
    summary = reply.json()
    _conforms(summary, "Summary")
    assert (summary["days"], summary["partial_date"]) == (3, None)  # ends before today
    assert summary["cards"]["cost_usd"] == "0.60000000"
    assert summary["cards"]["jobs"] == 6
    assert summary["previous"]["from"] == "2025-03-07"
    assert summary["previous"]["to"] == "2025-03-09"
    assert summary["previous"]["cards"]["cost_usd"] == "0.30000000"
    assert summary["previous"]["cards"]["jobs"] == 4
    change = summary["change"]
    # Exact before the quotient: 0.600000002 / 0.300000001 is exactly 2, a change of 1.
    assert (change["cost_usd"], change["jobs"], change["ai_calls"]) == (1.0, 0.5, None)
    same = await gateway.get("/api/admin/cost/summary?days=3&to=2025-03-12", headers=AS_ADMIN)
    assert same.json()["cards"] == summary["cards"]
    week = (await gateway.get("/api/admin/cost/summary", headers=AS_ADMIN)).json()
    today = datetime.now(UTC).date()
    assert (week["days"], week["partial_date"]) == (7, today.isoformat())
    for query, name in [
        ("days=93", "days"),
        ("days=0", "days"),
        ("from=2025-03-10&days=3", "days"),
        ("from=2025-03-10&to=2025-03-09", "from"),
        ("from=2025-01-01&to=2025-04-03", "from"),  # 93 days
    ]:
        bad = await gateway.get(f"/api/admin/cost/summary?{query}", headers=AS_ADMIN)
        assert (bad.status_code, bad.json()["field"]) == (400, name), query
    longest = await gateway.get(
        "/api/admin/cost/summary?from=2025-01-01&to=2025-04-02", headers=AS_ADMIN
    )
    assert longest.json()["days"] == 92


@pytest.fixture
async def throttle_port(
    service_env: dict[str, str], db: asyncpg.Pool
) -> AsyncIterator[tuple[ThrottleApp, int]]:
    """A throttle on the test database that reloads budgets only when told (NOTIFY)."""
    throttle = await build_throttle(
        ThrottleConfig.from_env({**service_env, "THROTTLE_BUDGET_RELOAD_SECONDS": "3600"})
    )
    port = await throttle.server.start()
    try:
        yield throttle, port
    finally:
        await throttle.server.stop()


async def test_a_budget_set_through_the_gateway_reaches_the_throttle(
    gateway: httpx.AsyncClient, throttle_port: tuple[ThrottleApp, int], db: asyncpg.Pool
) -> None:
    throttle, port = throttle_port
    reply = await gateway.post(
        "/api/admin/cost/budgets",
        headers=AS_ADMIN,
        json={
            "apply_scope": "free",
            "daily_cpu_ms_cap": 100,
            "daily_cost_usd_cap": "2.5",
            "alert_thresholds": ["0.5", "1"],
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["budget"]["updated_by"] == "ops"
    listed = (await gateway.get("/api/admin/cost/budgets", headers=AS_ADMIN)).json()["budgets"]
    assert [(b["apply_scope"], b["daily_cpu_ms_cap"], b["daily_cost_usd_cap"]) for b in listed] == [
        ("free", 100, "2.500000")
    ]
    async with asyncio.timeout(10):
        await throttle.budgets.wait_for_budget("free", {"daily_cpu_ms_cap": 100})
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = await throttle_pb2_grpc.ThrottleServiceStub(channel).Check(
            throttle_pb2.CheckRequest(user_id="u", tier="free", est_cpu_ms=500)
        )
    assert check.action == throttle_pb2.DEFER


# The cost-control seed's budget body: its four daily caps and its scope, verbatim.
SEED_BUDGET = {
    "daily_cpu_ms_cap": 3600000,
    "daily_jobs_cap": 100,
    "llm_input_tokens_cap": 500000,
    "llm_output_tokens_cap": 100000,
    "apply_scope": "free",
}


async def test_the_seed_budget_body_is_stored_read_back_and_enforced(
    gateway: httpx.AsyncClient, throttle_port: tuple[ThrottleApp, int], db: asyncpg.Pool
) -> None:
    throttle, port = throttle_port
    reply = await gateway.post("/api/admin/cost/budgets", headers=AS_ADMIN, json=SEED_BUDGET)
    assert reply.status_code == 200, reply.text
    (listed,) = (await gateway.get("/api/admin/cost/budgets", headers=AS_ADMIN)).json()["budgets"]
    assert {name: listed[name] for name in SEED_BUDGET} == SEED_BUDGET
    row = await db.fetchrow("SELECT * FROM cost_budgets WHERE apply_scope = 'free'")
    assert row is not None
    assert {name: row[name] for name in SEED_BUDGET} == SEED_BUDGET
    caps = {name: value for name, value in SEED_BUDGET.items() if isinstance(value, int)}
    async with asyncio.timeout(10):
        await throttle.budgets.wait_for_budget("free", caps)
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = throttle_pb2_grpc.ThrottleServiceStub(channel)
        within = await stub.Check(
            throttle_pb2.CheckRequest(user_id="u", tier="free", est_cpu_ms=1_000_000)
        )
        over = await stub.Check(
            throttle_pb2.CheckRequest(user_id="u", tier="free", est_cpu_ms=4_000_000)
        )
        tokens = await stub.Check(
            throttle_pb2.CheckRequest(user_id="u", tier="free", est_input_tokens=600_000)
        )
    assert within.action == throttle_pb2.ALLOW
    assert over.action == throttle_pb2.DEFER
    assert "cpu_ms" in over.reason
    assert tokens.action == throttle_pb2.DEFER
    assert "llm_input_tokens" in tokens.reason


async def test_a_cap_left_out_or_null_is_no_cap(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    body = {"apply_scope": "pro", "daily_jobs_cap": None, "llm_output_tokens_cap": 2**63 - 1}
    reply = await gateway.post("/api/admin/cost/budgets", headers=AS_ADMIN, json=body)
    assert reply.status_code == 200, reply.text
    caps = ("daily_cpu_ms_cap", "daily_jobs_cap", "llm_input_tokens_cap", "llm_output_tokens_cap")
    assert [reply.json()["budget"][name] for name in caps] == [None] * 4
    row = await db.fetchrow("SELECT * FROM cost_budgets WHERE apply_scope = 'pro'")
    assert row is not None
    assert [row[name] for name in caps] == [2**63 - 1] * 4  # NOT NULL, as the seed has it
    too_big = {"apply_scope": "pro", "daily_cpu_ms_cap": 2**63}
    refused = await gateway.post("/api/admin/cost/budgets", headers=AS_ADMIN, json=too_big)
    assert (refused.status_code, refused.json()["field"]) == (400, "daily_cpu_ms_cap")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"apply_scope": "platinum"}, "apply_scope"),
        ({"apply_scope": "global", "daily_cpu_ms_cap": -1}, "daily_cpu_ms_cap"),
        ({"apply_scope": "global", "daily_jobs_cap": 1.5}, "daily_jobs_cap"),
        ({"apply_scope": "global", "daily_cost_usd_cap": "1.1234567"}, "daily_cost_usd_cap"),
        ({"apply_scope": "global", "daily_cost_usd_cap": "NaN"}, "daily_cost_usd_cap"),
        ({"apply_scope": "global", "alert_thresholds": ["0"]}, "alert_thresholds"),
        ({"apply_scope": "global", "surprise": 1}, "surprise"),
        ([1, 2], "body"),
    ],
)
async def test_bad_budgets_are_400_naming_the_field(
    gateway: httpx.AsyncClient, body: Any, field: str
) -> None:
    reply = await gateway.post("/api/admin/cost/budgets", headers=AS_ADMIN, json=body)
    assert reply.status_code == 400
    assert reply.json()["field"] == field


async def test_alert_test_sends_a_signed_webhook_retrying_a_failure(
    gateway: httpx.AsyncClient, receiver: Receiver, db: asyncpg.Pool
) -> None:
    receiver.fail_first = 1
    reply = await gateway.post("/api/admin/cost/alert:test", headers=AS_ADMIN)
    assert reply.json() == {"delivered": True, "status": 200, "attempts": 2, "error": None}
    (message,) = receiver.received
    assert message["text"].startswith("costguard: a test alert")
    assert receiver.bad_signatures == 0
    assert await db.fetchval("SELECT attempts FROM alert_deliveries") == 2


async def test_threshold_alerts_are_sent_once_and_resolved_once(
    gateway_app: Starlette, receiver: Receiver, db: asyncpg.Pool
) -> None:
    dispatcher = gateway_app.state.dispatcher
    await dispatcher.stop()  # this test drives it step by step
    today = datetime.now(UTC).date()
    await db.execute(
        "INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap, "
        "llm_input_tokens_cap, llm_output_tokens_cap) VALUES ('global', $1, 10, $1, $1)",
        2**63 - 1,
    )
    await db.execute(
        "INSERT INTO budget_alerts (day, apply_scope, metric, threshold, used, cap) "
        "VALUES ($1, 'global', 'jobs', 0.8, 9, 10)",
        today,
    )
    assert await dispatcher.resolve_once(today) == 1  # Redis holds no use today: back under
    assert await dispatcher.deliver_once() == 2
    assert await dispatcher.deliver_once() == 0  # never twice
    assert [m["costguard"]["kind"] for m in receiver.received] == ["crossed", "resolved"]
    assert await dispatcher.resolve_once(today) == 0


async def test_an_alert_the_dispatcher_gives_up_on_is_failed_on_the_alerts_route(
    gateway_app: Starlette, gateway: httpx.AsyncClient, receiver: Receiver, db: asyncpg.Pool
) -> None:
    dispatcher = gateway_app.state.dispatcher
    await dispatcher.stop()  # this test drives it step by step
    today = datetime.now(UTC).date()
    await db.execute(
        "INSERT INTO budget_alerts (day, apply_scope, metric, threshold, used, cap, "
        "delivery_attempts) VALUES ($1, 'global', 'jobs', 0.8, 9, 10, $2)",
        today,
        GIVE_UP_ATTEMPTS - 1,
    )
    receiver.fail_first = 100  # every try of its last attempt refused

    async def status() -> tuple[str, int, int]:
        body = (await gateway.get("/api/admin/cost/alerts?days=1", headers=AS_ADMIN)).json()
        (alert,) = body["alerts"]
        return alert["status"], alert["attempts"], body["counts"]["failed"]

    assert await status() == ("pending", GIVE_UP_ATTEMPTS - 1, 0)
    assert await dispatcher.deliver_once() == 0
    assert await status() == ("failed", GIVE_UP_ATTEMPTS, 1)
    receiver.fail_first = 0
    assert await dispatcher.deliver_once() == 0  # given up: never claimed again
    assert (await status(), receiver.received) == (("failed", GIVE_UP_ATTEMPTS, 1), [])


async def test_entity_and_period_queries(gateway: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    await db.execute(
        "INSERT INTO entity_costs "
        "(entity_type, entity_id, podcast_id, total_cost_usd, cost_by_service, event_count) "
        "VALUES ('episode', 'ep1', 'p1', 0.5, '{\"openai\": \"0.5\"}', 3), "
        "('episode', 'ep2', 'p1', 1.5, '{}', 1)"
    )
    episode = (await gateway.get("/api/admin/cost/episodes/ep1", headers=AS_ADMIN)).json()
    assert (episode["total_cost_usd"], episode["cost_by_service"]) == (
        "0.50000000",
        {"openai": "0.50000000"},  # every figure shown to 8 places, the breakdown's too
    )
    podcast = (await gateway.get("/api/admin/cost/podcasts/p1/episodes", headers=AS_ADMIN)).json()
    assert [e["episode_id"] for e in podcast["episodes"]] == ["ep2", "ep1"]
    assert (podcast["total_cost_usd"], podcast["average_cost_usd"], podcast["max_cost_usd"]) == (
        "2.00000000", "1.00000000", "1.50000000")  # fmt: skip
    missing = await gateway.get("/api/admin/cost/episodes/nope", headers=AS_ADMIN)
    assert (missing.status_code, missing.json()["field"]) == (404, "episode_id")
    daily = await gateway.get(
        "/api/admin/cost/daily?from=2026-01-10&to=2026-01-01", headers=AS_ADMIN
    )
    assert (daily.status_code, daily.json()["field"]) == (400, "from")
    month = await gateway.get("/api/admin/cost/monthly?year=2026&month=13", headers=AS_ADMIN)
    assert (month.status_code, month.json()["field"]) == (400, "month")
    for query, name in [
        ("year=%C2%B2", "year"),
        ("month=%C2%BE", "month"),
        ("year=" + "9" * 5000, "year"),
    ]:
        odd = await gateway.get(f"/api/admin/cost/monthly?{query}", headers=AS_ADMIN)
        assert (odd.status_code, odd.json()["field"]) == (400, name)
    for query, name in [("to=0001-01-01", "to"), ("from=9999-12-31&to=2026-01-01", "from")]:
        odd = await gateway.get(f"/api/admin/cost/daily?{query}", headers=AS_ADMIN)
        assert (odd.status_code, odd.json()["field"]) == (400, name)


async def test_openapi_and_metrics(gateway: httpx.AsyncClient) -> None:
    spec = (await gateway.get("/api/openapi.json")).json()
    assert {
        "/api/admin/cost/summary",
        "/api/admin/cost/budgets",
        "/api/admin/cost/alert:test",
    } <= set(spec["paths"])
    metrics = await gateway.get("/metrics")
    assert metrics.status_code == 200
    assert "python_info" in metrics.text


# The podcast app's queries over real data: events stored by the telemetry service's
# ingestor, rolled up by the real rollup, read back through the routes. Prices by hand, from
# the seed constants (2e-8 $/CPU ms), gpt-4o-mini (0.15 and 0.60 $ per million input and
# output tokens) and SES (0.10 $ per 1,000 emails).
MARCH_10 = datetime(2025, 3, 10, 12, tzinfo=UTC)
MARCH_11 = datetime(2025, 3, 11, 12, tzinfo=UTC)
MAY_2 = datetime(2025, 5, 2, 12, tzinfo=UTC)
EP1 = {"compute": Decimal("0.00004"), "ai": Decimal("0.00021"), "aws": Decimal("0.0002")}
EP2 = {"compute": Decimal("0.00001"), "ai": Decimal(0), "aws": Decimal("0.001")}
EP3 = {"compute": Decimal(0), "ai": Decimal("0.0003"), "aws": Decimal(0)}
MAY_JOB = Decimal("0.00002")


async def _store_and_roll_up(db: asyncpg.Pool) -> None:
    ingestor = Ingestor(
        db, None, tiers=("free", "pro"), timezone=ZoneInfo("UTC"), sheets=_sheets(ZoneInfo("UTC"))
    )

    def on(moment: datetime, episode: str | None) -> dict[str, Any]:
        return {"created_at": ts(moment), "episode_id": episode or "", "podcast_id": "pod-a"}

    result = await ingestor.store(
        [
            # ep1: 2,000 CPU ms; 1,000 tokens in and 100 out; two emails.
            job(cpu_ms=2000, started_at=ts(MARCH_10), **on(MARCH_10, "ep1")),
            llm(llm_model="gpt-4o-mini", input_tokens=1000, output_tokens=100,
                **on(MARCH_10, "ep1")),
            cost(event_type="ses_email", service="ses", quantity=2, unit="emails",
                 **on(MARCH_10, "ep1")),
            # ep2: 500 CPU ms, ten emails and an S3 operation nobody prices.
            job(cpu_ms=500, started_at=ts(MARCH_10), **on(MARCH_10, "ep2")),
            cost(event_type="ses_email", service="ses", quantity=10, unit="emails",
                 **on(MARCH_10, "ep2")),
            cost(event_type="s3_operation", service="s3_mystery", quantity=1, unit="requests",
                 **on(MARCH_10, "ep2")),
            # ep3, the next day: 2,000 tokens in, none out.
            llm(llm_model="gpt-4o-mini", input_tokens=2000, output_tokens=0,
                **on(MARCH_11, "ep3")),
            # Another month, no podcast.
            job(cpu_ms=1000, created_at=ts(MAY_2), started_at=ts(MAY_2)),
        ]
    )  # fmt: skip
    assert (result.accepted, result.rejections) == (8, ())
    pricing = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
    for day in (MARCH_10.date(), MARCH_11.date(), MAY_2.date()):
        await rollup_costs_for_date(db, day, tz=ZoneInfo("UTC"), pricing=pricing)


def _conforms(body: Any, schema: str) -> None:
    """``body`` is what the OpenAPI document promises (schemathesis sees empty tables)."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": document()["components"]}
    jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)


def _usd(value: Decimal) -> str:
    """As the gateway writes money: the exact figure rounded once to 8 places, half away
    from zero, and zero as "0"."""
    rounded = value.quantize(Decimal("0.00000001"), ROUND_HALF_UP)
    return f"{rounded:f}" if rounded else "0"


async def test_a_podcasts_episodes_with_the_ai_and_aws_split(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await _store_and_roll_up(db)
    reply = await gateway.get("/api/admin/cost/podcasts/pod-a/episodes", headers=AS_ADMIN)
    assert reply.status_code == 200, reply.text
    podcast = reply.json()
    _conforms(podcast, "PodcastEpisodes")
    by_episode = {"ep1": EP1, "ep2": EP2, "ep3": EP3}
    expected_episodes = [
        {
            "episode_id": name,
            "total_cost_usd": _usd(sum(split.values(), Decimal(0))),
            "ai_cost_usd": _usd(split["ai"]),
            "aws_cost_usd": _usd(split["aws"]),
            "compute_cost_usd": _usd(split["compute"]),
            "unpriced_cost_usd": _usd(Decimal(0)),
            "has_unpriced_events": name == "ep2",
            "event_count": events,
        }
        for name, events in (("ep2", 3), ("ep1", 3), ("ep3", 1))  # by cost, descending
        for split in [by_episode[name]]
    ]
    assert [
        {k: v for k, v in e.items() if k != "calculated_at"} for e in podcast["episodes"]
    ] == expected_episodes
    totals = {e: sum(by_episode[e].values(), Decimal(0)) for e in by_episode}
    total = sum(totals.values(), Decimal(0))
    assert total == Decimal("0.00176")
    assert {k: v for k, v in podcast.items() if k != "episodes"} == {
        "podcast_id": "pod-a",
        "episode_count": 3,
        "event_count": 7,
        "total_cost_usd": _usd(total),
        "average_cost_usd": "0.00058667",  # 0.00176 / 3, rounded once
        "max_cost_usd": _usd(totals["ep2"]),
        "ai_cost_usd": _usd(EP1["ai"] + EP2["ai"] + EP3["ai"]),
        "aws_cost_usd": _usd(EP1["aws"] + EP2["aws"] + EP3["aws"]),
        "compute_cost_usd": _usd(EP1["compute"] + EP2["compute"] + EP3["compute"]),
        "unpriced_cost_usd": "0",
        "episodes_with_unpriced_events": 1,
    }
    split = sum(Decimal(podcast[f"{c}_cost_usd"]) for c in ("ai", "aws", "compute", "unpriced"))
    assert split == Decimal(podcast["total_cost_usd"])
    first = await gateway.get("/api/admin/cost/podcasts/pod-a/episodes?limit=1", headers=AS_ADMIN)
    assert [e["episode_id"] for e in first.json()["episodes"]] == ["ep2"]
    assert first.json()["total_cost_usd"] == _usd(total)  # totals cover every episode

    missing = await gateway.get("/api/admin/cost/podcasts/pod-z/episodes", headers=AS_ADMIN)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "no episode costs for podcast 'pod-z' yet",
        "field": "podcast_id",
    }


async def test_the_daily_summary_totals_its_range(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await _store_and_roll_up(db)
    reply = await gateway.get(
        "/api/admin/cost/daily?from=2025-03-01&to=2025-03-31", headers=AS_ADMIN
    )
    assert reply.status_code == 200, reply.text
    daily = reply.json()
    _conforms(daily, "Daily")
    tenth = sum((*EP1.values(), *EP2.values()), Decimal(0))
    eleventh = sum(EP3.values(), Decimal(0))
    assert [(d["date"], d["jobs"], d["cost_usd"]) for d in daily["days"]] == [
        ("2025-03-10", 2, _usd(tenth)),
        ("2025-03-11", 0, _usd(eleventh)),
    ]
    assert daily["totals"] == {
        "days": 2,
        "jobs": 2,
        "ai_calls": 2,
        "cpu_ms": 2500,
        "tokens_in": 3000,
        "tokens_out": 100,
        "cost_usd": _usd(tenth + eleventh),
    }
    empty = await gateway.get(
        "/api/admin/cost/daily?from=2025-04-01&to=2025-04-30", headers=AS_ADMIN
    )
    assert empty.json()["totals"] == {
        "days": 0, "jobs": 0, "ai_calls": 0, "cpu_ms": 0, "tokens_in": 0, "tokens_out": 0,
        "cost_usd": "0",
    }  # fmt: skip
    default = (await gateway.get("/api/admin/cost/daily", headers=AS_ADMIN)).json()
    today = datetime.now(UTC).date()
    assert (default["from"], default["to"]) == (
        (today - timedelta(days=29)).isoformat(),
        today.isoformat(),
    )
    assert default["totals"]["days"] == 0


async def test_a_year_of_monthly_summaries_and_one_month(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await _store_and_roll_up(db)
    march = sum((*EP1.values(), *EP2.values(), *EP3.values()), Decimal(0))
    reply = await gateway.get("/api/admin/cost/monthly?year=2025", headers=AS_ADMIN)
    assert reply.status_code == 200, reply.text
    year = reply.json()
    _conforms(year, "Year")
    assert year["year"] == 2025
    assert [(m["month"], m["cost_usd"], m["days_rolled"]) for m in year["months"]] == [
        (3, _usd(march), 2),
        (5, _usd(MAY_JOB), 1),
    ]
    assert year["totals"] == {
        "months": 2,
        "jobs": 3,
        "ai_calls": 2,
        "cpu_ms": 3500,
        "tokens_in": 3000,
        "tokens_out": 100,
        "cost_usd": _usd(march + MAY_JOB),
        "days_rolled": 3,
        "cost_by_service": {
            "compute": _usd(EP1["compute"] + EP2["compute"] + MAY_JOB),
            "openai": _usd(EP1["ai"] + EP3["ai"]),
            "s3_mystery": _usd(Decimal(0)),
            "ses": _usd(EP1["aws"] + EP2["aws"]),
        },
        "podcast_breakdown": {"pod-a": _usd(march)},
    }

    one = await gateway.get("/api/admin/cost/monthly?year=2025&month=3", headers=AS_ADMIN)
    assert one.status_code == 200
    assert one.json() == year["months"][0]
    _conforms(one.json(), "Month")
    assert (await gateway.get("/api/admin/cost/monthly?year=2025&month=4", headers=AS_ADMIN)
            ).status_code == 404  # fmt: skip
    nothing = await gateway.get("/api/admin/cost/monthly?year=2024", headers=AS_ADMIN)
    assert nothing.status_code == 200
    assert nothing.json() == {
        "year": 2024,
        "months": [],
        "totals": {
            "months": 0, "jobs": 0, "ai_calls": 0, "cpu_ms": 0, "tokens_in": 0, "tokens_out": 0,
            "cost_usd": "0", "days_rolled": 0, "cost_by_service": {},
            "podcast_breakdown": {},
        },
    }  # fmt: skip
    alone = await gateway.get("/api/admin/cost/monthly?month=3", headers=AS_ADMIN)
    assert alone.status_code == 400
    assert alone.json() == {"error": "year is required with month", "field": "year"}
    current = await gateway.get("/api/admin/cost/monthly", headers=AS_ADMIN)
    assert (current.status_code, current.json()["field"]) == (404, "month")  # not rolled up


async def _breakdown_rows(db: asyncpg.Pool, rows: list[tuple[str, str, str, Decimal, int]]) -> None:
    """cost_breakdown_daily rows (date, dimension, key, cost, calls), as the rollup's
    breakdown (another change) writes them for the events ``_store_and_roll_up`` stores."""
    await db.executemany(
        "INSERT INTO cost_breakdown_daily (date, dimension, key, cost_usd, calls) "
        "VALUES ($1, $2, $3, $4, $5)",
        [
            (date.fromisoformat(d), dim, key, cost_usd, calls)
            for d, dim, key, cost_usd, calls in rows
        ],
    )


async def test_every_breakdown_adds_up_to_the_summarys_cost(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await _store_and_roll_up(db)  # the rollup writes cost_breakdown_daily too
    model = "openai/gpt-4o-mini"
    window = "from=2025-03-10&to=2025-03-11"
    summary = (await gateway.get(f"/api/admin/cost/summary?{window}", headers=AS_ADMIN)).json()
    march = sum((*EP1.values(), *EP2.values(), *EP3.values()), Decimal(0))
    assert summary["cards"]["cost_usd"] == _usd(march)
    shown = {}
    for by in ("model", "service", "domain", "tier"):
        reply = await gateway.get(f"/api/admin/cost/breakdown?by={by}&{window}", headers=AS_ADMIN)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        _conforms(body, "Breakdown")
        assert body["total"]["cost_usd"] == summary["cards"]["cost_usd"], by
        assert sum(Decimal(r["cost_usd"]) for r in body["rows"]) == march, by
        assert (body["previous"], body["partial_date"]) == (
            {"from": "2025-03-08", "to": "2025-03-09"},
            None,
        )
        costs = [Decimal(r["cost_usd"]) for r in body["rows"]]
        assert costs == sorted(costs, reverse=True)
        shown[by] = body
    ai = EP1["ai"] + EP3["ai"]
    assert [(r["key"], r["label"], r["cost_usd"], r["calls"]) for r in shown["model"]["rows"]] == [
        (None, "not an LLM call", _usd(march - ai), 0),  # the jobs and the emails
        (model, model, _usd(ai), 2),
    ]
    assert shown["model"]["rows"][1]["share"] == pytest.approx(float(ai / march))
    assert shown["model"]["rows"][1]["previous_cost_usd"] == "0"
    assert shown["model"]["rows"][1]["change"] is None  # nothing the period before
    # The service rows cover every cost (no rest row); an unpriced service is a $0 row.
    assert [(r["key"], r["cost_usd"]) for r in shown["service"]["rows"]][3:] == [
        ("s3_mystery", "0")
    ]
    assert [r["key"] for r in shown["service"]["rows"]][:3] == ["ses", "openai", "compute"]
    # Cost events have no domain: the emails are the rest.
    emails = EP1["aws"] + EP2["aws"]
    assert (None, "no domain", _usd(emails)) in [
        (r["key"], r["label"], r["cost_usd"]) for r in shown["domain"]["rows"]
    ]
    assert None not in [r["key"] for r in shown["tier"]["rows"]]  # the tiers cover every cost
    bad = await gateway.get(f"/api/admin/cost/breakdown?by=podcast&{window}", headers=AS_ADMIN)
    assert (bad.status_code, bad.json()["field"]) == (400, "by")
    long = await gateway.get("/api/admin/cost/breakdown?by=model&days=93", headers=AS_ADMIN)
    assert (long.status_code, long.json()["field"]) == (400, "days")


async def test_a_breakdown_row_is_compared_with_the_period_before(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    for day, cost_usd in [("2025-03-09", "0.5"), ("2025-03-10", "1.5")]:
        await db.execute(
            "INSERT INTO cost_global_daily (date, cost_usd, tier_breakdown_json) "
            "VALUES ($1, $2::numeric, '{}')",
            date.fromisoformat(day),
            cost_usd,
        )
    await _breakdown_rows(
        db,
        [
            ("2025-03-09", "domain", "news", Decimal("0.5"), 1),
            ("2025-03-10", "domain", "news", Decimal("1"), 2),
            ("2025-03-10", "domain", "=sport", Decimal("0.5"), 1),
        ],
    )
    reply = await gateway.get(
        "/api/admin/cost/breakdown?by=domain&from=2025-03-10&to=2025-03-10", headers=AS_ADMIN
    )
    body = reply.json()
    assert [
        (r["key"], r["cost_usd"], r["previous_cost_usd"], r["change"]) for r in body["rows"]
    ] == [
        ("news", "1.00000000", "0.50000000", 1.0),
        ("=sport", "0.50000000", "0", None),
    ]
    assert body["previous_total"]["cost_usd"] == "0.50000000"
    assert body["total"] == {"cost_usd": "1.50000000", "tokens_in": 0, "tokens_out": 0, "calls": 3}


async def test_decisions_count_every_date_by_tier_and_action(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    await db.executemany(
        "INSERT INTO throttle_decisions_daily (date, tier, action, decisions) "
        "VALUES ($1, $2, $3, $4)",
        [
            (date(2025, 3, 10), "free", "ALLOW", 5),
            (date(2025, 3, 10), "free", "DENY", 2),
            (date(2025, 3, 12), "pro", "DEFER", 1),
            (date(2025, 3, 13), "pro", "ALLOW", 9),  # after the range
        ],
    )
    reply = await gateway.get(
        "/api/admin/cost/decisions?from=2025-03-10&to=2025-03-12", headers=AS_ADMIN
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    _conforms(body, "Decisions")
    zero = {"ALLOW": 0, "DOWNGRADE": 0, "DEFER": 0, "DENY": 0}
    assert body["totals"] == [
        {"tier": "free", **zero, "ALLOW": 5, "DENY": 2, "total": 7},
        {"tier": "pro", **zero, "DEFER": 1, "total": 1},
    ]
    assert body["series"] == [
        {"date": "2025-03-10", **zero, "ALLOW": 5, "DENY": 2},
        {"date": "2025-03-11", **zero},
        {"date": "2025-03-12", **zero, "DEFER": 1},
    ]
    pro = await gateway.get(
        "/api/admin/cost/decisions?from=2025-03-10&to=2025-03-12&tier=pro", headers=AS_ADMIN
    )
    assert [t["tier"] for t in pro.json()["totals"]] == ["pro"]
    bad = await gateway.get("/api/admin/cost/decisions?tier=gold", headers=AS_ADMIN)
    assert (bad.status_code, bad.json()["field"]) == (400, "tier")
