"""The admin API: auth on every route, sessions, budgets to the throttle, alerts by webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from grpc import aio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from costguard.devstack import free_port
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import build as build_throttle
from costguard.v1 import throttle_pb2, throttle_pb2_grpc
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
    forged = await gateway.request(
        method, path, headers={"cookie": "costguard_session=bm9ib2R5OmFkbWluOjk5OTk5OTk5OTk.xx"}
    )
    assert (anonymous.status_code, viewer.status_code, forged.status_code) == (401, 403, 401)
    assert "error" in anonymous.json()
    odd = await gateway.request(
        method, path, headers={b"cookie": "costguard_session=bm9ib2R5.x\u00e9".encode("latin-1")}
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
    await gateway.delete("/api/admin/session")
    gateway.cookies.clear()
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
        {"item": "llm:openai/house", "cost_usd": "0.25", "share": 0.1, "events": 4, "reason": ""},
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


async def test_a_budget_set_through_the_gateway_reaches_the_throttle(
    gateway: httpx.AsyncClient, service_env: dict[str, str], db: asyncpg.Pool
) -> None:
    throttle = await build_throttle(
        ThrottleConfig.from_env({**service_env, "THROTTLE_BUDGET_RELOAD_SECONDS": "3600"})
    )
    port = await throttle.server.start()
    try:
        version = throttle.budgets.version
        reply = await gateway.post(
            "/api/admin/cost/budgets",
            headers=AS_ADMIN,
            json={
                "apply_scope": "free",
                "cpu_ms_per_day": 100,
                "cost_usd_per_day": "2.5",
                "alert_thresholds": ["0.5", "1"],
            },
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["budget"]["updated_by"] == "ops"
        listed = (await gateway.get("/api/admin/cost/budgets", headers=AS_ADMIN)).json()["budgets"]
        assert [(b["apply_scope"], b["cpu_ms_per_day"], b["cost_usd_per_day"]) for b in listed] == [
            ("free", 100, "2.500000")
        ]
        async with asyncio.timeout(10):
            await throttle.budgets.wait_for_version(version + 1)
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            check = await throttle_pb2_grpc.ThrottleServiceStub(channel).Check(
                throttle_pb2.CheckRequest(user_id="u", tier="free", est_cpu_ms=500)
            )
        assert check.action == throttle_pb2.DEFER
    finally:
        await throttle.server.stop()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"apply_scope": "platinum"}, "apply_scope"),
        ({"apply_scope": "global", "cpu_ms_per_day": -1}, "cpu_ms_per_day"),
        ({"apply_scope": "global", "jobs_per_day": 1.5}, "jobs_per_day"),
        ({"apply_scope": "global", "cost_usd_per_day": "1.1234567"}, "cost_usd_per_day"),
        ({"apply_scope": "global", "cost_usd_per_day": "NaN"}, "cost_usd_per_day"),
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
    await db.execute("INSERT INTO cost_budgets (apply_scope, jobs_per_day) VALUES ('global', 10)")
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
        {"openai": "0.5"},
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
