"""The thin real path: SDK -> telemetry -> Postgres -> gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest

from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.sdk import LlmCall, TelemetryClient, UserContext, job_telemetry, record_llm_event

ADMIN, VIEWER = "admin-token-1", "viewer-token-1"


class JobFailedError(Exception):
    pass


async def test_sdk_job_events_land_in_postgres(telemetry_addr: str, db: asyncpg.Pool) -> None:
    client = TelemetryClient(telemetry_addr)
    queued = datetime.now(UTC) - timedelta(seconds=3)
    ctx = UserContext("user-1", "pro", domain="transcription", queued_at=queued)
    async with job_telemetry("transcribe", ctx, job_id="bull-42", client=client) as run:
        run.add_rows(read=120, written=7)
    failure = JobFailedError("boom")
    with pytest.raises(JobFailedError) as raised:
        async with job_telemetry("transcribe", ctx, client=client):
            raise failure
    assert raised.value is failure  # the job's own exception, untouched
    await client.close()

    rows = await db.fetch("SELECT * FROM telemetry_job_events ORDER BY success DESC")
    assert [(r["success"], r["error_code"]) for r in rows] == [
        (True, None),
        (False, "JobFailedError"),
    ]
    ok = rows[0]
    assert (ok["user_id"], ok["tier"], ok["domain"]) == ("user-1", "pro", "transcription")
    assert (ok["rows_read"], ok["rows_written"]) == (120, 7)
    assert ok["queue_wait_ms"] >= 3000
    assert ok["queued_at"] is not None
    assert ok["started_at"] >= ok["queued_at"]
    # The seed's columns: the run's own id, its kind (the job's name, no coarser type given)
    # and the peak memory in whole MB.
    assert (ok["job_id"], ok["job_type"], rows[1]["job_id"]) == ("bull-42", "transcribe", None)
    assert isinstance(ok["mem_mb_peak"], int)
    assert ok["mem_mb_peak"] > 0


async def test_llm_context_type_from_the_event_the_context_or_the_default(
    telemetry_addr: str, db: asyncpg.Pool
) -> None:
    client = TelemetryClient(telemetry_addr)
    ctx = UserContext("user-2", "free", context_type="chat")
    record_llm_event(LlmCall("gpt-4o-mini", context_type="summary", user_ctx=ctx), client=client)
    record_llm_event(LlmCall("gpt-4o-mini", user_ctx=ctx), client=client)
    record_llm_event(LlmCall("gpt-4o-mini", user_ctx=UserContext("user-2", "free")), client=client)
    await client.close()
    rows = await db.fetch("SELECT context_type FROM telemetry_llm_events ORDER BY id")
    assert [r["context_type"] for r in rows] == ["summary", "chat", "general"]


@pytest.fixture
async def gateway(
    db: asyncpg.Pool, service_env: dict[str, str], telemetry_addr: str
) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **service_env,
        "TELEMETRY_ADDR": telemetry_addr,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)},dash:viewer:{hash_token(VIEWER)}",
    }
    app = create_app(GatewayConfig.from_env(env))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def test_healthz_and_readyz_name_what_is_down(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.get("/readyz")
    # Telemetry runs here; throttle and rollup do not, and readiness says exactly that.
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert {k: v == "ok" for k, v in checks.items()} == {
        "postgres": True,
        "redis": True,
        "telemetry": True,
        "throttle": False,
        "rollup": False,
    }


async def test_summary_reads_postgres_with_admin_auth(
    gateway: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    today = datetime.now(UTC).date()
    await db.execute(
        "INSERT INTO cost_global_daily"
        " (date, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd) VALUES"
        " ($1, 5, 2, 1000, 300, 40, 1.25), ($2, 1, 0, 10, 0, 0, 0.5), ($3, 9, 9, 9, 9, 9, 9)",
        today,
        today - timedelta(days=6),
        today - timedelta(days=7),  # outside a 7-day window
    )
    reply = await gateway.get(
        "/api/admin/cost/summary?days=7", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["cards"]["jobs"] == 6
    assert Decimal(body["cards"]["cost_usd"]) == Decimal("1.75")
    assert len(body["sparklines"]["cost_usd"]) == 7
    assert body["sparklines"]["cost_usd"][-1] == {"date": today.isoformat(), "value": "1.25000000"}
    assert body["sparklines"]["jobs"][0] == {
        "date": (today - timedelta(days=6)).isoformat(),
        "value": 1,
    }


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": f"Bearer {VIEWER}"}, 403),
    ],
)
async def test_summary_refuses_without_admin_credentials(
    gateway: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    reply = await gateway.get("/api/admin/cost/summary", headers=headers)
    assert reply.status_code == status
    assert "error" in reply.json()


async def test_summary_names_a_bad_days_value(gateway: httpx.AsyncClient) -> None:
    reply = await gateway.get(
        "/api/admin/cost/summary?days=93", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert reply.status_code == 400
    assert reply.json() == {"error": "days must be a whole number from 1 to 92", "field": "days"}
