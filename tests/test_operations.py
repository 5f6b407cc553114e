"""Issue 7: metrics that count, request ids across calls, retention, and its guards."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import grpc
import httpx
import pytest
from grpc import aio
from prometheus_client import REGISTRY

from costguard.common.config import CoreConfig, Env
from costguard.common.day_sheets import DaySheets
from costguard.common.grpc_server import GrpcServer
from costguard.common.logging import JsonFormatter, request_id
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.devstack import DevStack, free_port
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.gateway.webhook import WebhookSender
from costguard.rollup.config import RollupConfig
from costguard.rollup.retention import PastRetention, prune_raw_events
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.rollup.runs import Rollups
from costguard.rollup.server import RollupApp
from costguard.rollup.server import build as build_rollup
from costguard.sdk import mark_episode_complete
from costguard.sdk import request_id as sdk_request_id
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.ingest import Ingestor
from costguard.telemetry.server import build_server as build_telemetry
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import build as build_throttle
from costguard.v1 import (
    rollup_pb2,
    rollup_pb2_grpc,
    telemetry_pb2,
    telemetry_pb2_grpc,
    throttle_pb2,
    throttle_pb2_grpc,
)
from tests.events import cost, job, llm, ts

UTC_ZONE = ZoneInfo("UTC")
PRICING = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
ADMIN = "ops-admin-token"


def _sheets(tz: ZoneInfo) -> DaySheets:
    return DaySheets(seed=SeedPrices.from_env({}), aws=AwsPrices.from_env({}), tz=tz)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def json_log_lines() -> Iterator[list[dict[str, Any]]]:
    """Every log line of this process, formatted as the services write them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines += [json.loads(line) for line in out.getvalue().splitlines()]


# Metrics


async def test_storing_a_batch_counts_events_by_kind_and_result(telemetry_addr: str) -> None:
    before = {
        result: sample("costguard_telemetry_events_total", kind="job", result=result)
        for result in ("accepted", "duplicate", "rejected")
    }
    batches = sample("costguard_telemetry_ingest_seconds_count")
    twice = job()
    async with aio.insecure_channel(telemetry_addr) as channel:
        reply = await telemetry_pb2_grpc.TelemetryServiceStub(channel).Record(
            telemetry_pb2.RecordRequest(events=[twice, job(), twice, job(user_id="")])
        )
    assert (reply.accepted, reply.duplicate, reply.rejected) == (2, 1, 1)
    after = {
        result: sample("costguard_telemetry_events_total", kind="job", result=result)
        for result in ("accepted", "duplicate", "rejected")
    }
    assert {k: after[k] - before[k] for k in after} == {
        "accepted": 2,
        "duplicate": 1,
        "rejected": 1,
    }
    assert sample("costguard_telemetry_ingest_seconds_count") == batches + 1


async def test_a_check_counts_its_decision_and_the_queue_gauges_follow(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    app = await build_throttle(ThrottleConfig.from_env(service_env))
    port = await app.server.start()
    decisions = sample("costguard_throttle_decisions_total", action="ALLOW", tier="free")
    checks = sample("costguard_throttle_check_seconds_count")
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = throttle_pb2_grpc.ThrottleServiceStub(channel)
            reply = await stub.Check(
                throttle_pb2.CheckRequest(user_id="u1", tier="free", est_cpu_ms=10)
            )
            assert reply.action == throttle_pb2.ALLOW
            assert sample("costguard_throttle_decisions_total", action="ALLOW", tier="free") == (
                decisions + 1
            )
            assert sample("costguard_throttle_check_seconds_count") == checks + 1

            await stub.Defer(throttle_pb2.DeferRequest(user_id="u1", tier="pro", payload=b"x"))
            assert sample("costguard_throttle_queue_depth", tier="pro") == 1
            leased = await stub.Lease(
                throttle_pb2.LeaseRequest(worker_id="w", max_jobs=5, visibility_timeout_ms=60_000)
            )
            assert len(leased.jobs) == 1
            assert sample("costguard_throttle_queue_depth", tier="pro") == 0
            assert sample("costguard_throttle_queue_leased") == 1
            job_ = leased.jobs[0]
            await stub.Ack(
                throttle_pb2.AckRequest(job_id=job_.job_id, lease_token=job_.lease_token)
            )
            assert sample("costguard_throttle_queue_leased") == 0
    finally:
        await app.server.stop()


async def test_every_grpc_service_serves_metrics_on_its_port(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    ports = {name: free_port() for name in ("telemetry", "throttle", "rollup")}

    def env(name: str) -> dict[str, str]:
        return {**service_env, "METRICS_PORT": str(ports[name]), "ROLLUP_SCHEDULER": "false"}

    servers = [
        await build_telemetry(TelemetryConfig.from_env(env("telemetry"))),
        (await build_throttle(ThrottleConfig.from_env(env("throttle")))).server,
        (await build_rollup(RollupConfig.from_env(env("rollup")))).server,
    ]
    try:
        for server in servers:
            await server.start()
        async with httpx.AsyncClient() as client:
            for name, port in ports.items():
                reply = await client.get(f"http://127.0.0.1:{port}/metrics")
                assert reply.status_code == 200
                assert f"costguard_{name}_" in reply.text
                assert "costguard_telemetry_events_total" in reply.text  # one registry
    finally:
        for server in servers:
            await server.stop()


async def test_a_metrics_port_in_use_is_logged_and_the_service_still_serves(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    port = free_port()
    env = {**service_env, "METRICS_PORT": str(port)}
    first = await build_telemetry(TelemetryConfig.from_env(env))
    second = await build_telemetry(TelemetryConfig.from_env(env))
    try:
        await first.start()
        with json_log_lines() as lines:
            await second.start()
        assert first.metrics.port == port
        assert second.metrics.port is None
        assert any(line["msg"] == "metrics not exported: port unavailable" for line in lines)
    finally:
        await second.stop()
        await first.stop()
    assert CoreConfig.from_env("x", Env({}), default_port=1).metrics_port == 9464


async def test_webhook_alerts_are_counted_sent_or_failed(db: asyncpg.Pool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.url.path == "/ok" else 500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        sent = sample("costguard_gateway_alerts_total", kind="test", result="sent")
        failed = sample("costguard_gateway_alerts_total", kind="test", result="failed")
        ok = WebhookSender("http://hooks/ok", "s", client, db, attempts=1)
        broken = WebhookSender("http://hooks/broken", "s", client, db, attempts=1)
        assert (await ok.send("test", "hello", {})).delivered
        assert not (await broken.send("test", "hello", {})).delivered
    assert sample("costguard_gateway_alerts_total", kind="test", result="sent") == sent + 1
    assert sample("costguard_gateway_alerts_total", kind="test", result="failed") == failed + 1


# Request ids


def _echo_handlers(server: aio.Server) -> None:
    async def rid(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        logging.getLogger("tests.echo").info("in the handler")

        async def child() -> str | None:
            logging.getLogger("tests.echo").info("in a task the handler made")
            return request_id.get()

        seen_by_child = await asyncio.create_task(child())
        return f"{request_id.get()}|{seen_by_child}".encode()

    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "costguard.test.Echo", {"Rid": grpc.unary_unary_rpc_method_handler(rid)}
            ),
        )
    )


async def test_the_request_id_reaches_the_handler_its_tasks_and_logs_and_comes_back(
    service_env: dict[str, str],
) -> None:
    env = {**service_env, "COSTGUARD_SERVICE_TOKEN": "svc"}
    core = CoreConfig.from_env("test", Env(env), default_port=0)
    auth = ("authorization", "Bearer svc")
    server = GrpcServer(core, [("costguard.test.Echo", _echo_handlers)])
    port = await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/costguard.test.Echo/Rid"
            )
            with json_log_lines() as lines:
                call = echo(b"", metadata=(auth, ("x-request-id", "req-42")))
                assert await call == b"req-42|req-42"
                assert ("x-request-id", "req-42") in tuple(await call.trailing_metadata())

                unnamed = echo(
                    b"", metadata=(auth,)
                )  # no id sent: the server makes one and says which
                made = str(dict(await unnamed.trailing_metadata())["x-request-id"])
                assert await unnamed == f"{made}|{made}".encode()
                assert len(made) == 32

                forged = echo(b"", metadata=(auth, ("x-request-id", 'x" "level": "evil')))
                kept = str(dict(await forged.trailing_metadata())["x-request-id"])
                assert kept != 'x" "level": "evil'

                with pytest.raises(aio.AioRpcError) as refused:  # no token: refused, still named
                    await echo(b"", metadata=(("x-request-id", "req-43"),))
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert ("x-request-id", "req-43") in tuple(refused.value.trailing_metadata() or ())
        echo_lines = [line for line in lines if line["logger"] == "tests.echo"]
        assert [line.get("request_id") for line in echo_lines] == [
            "req-42",
            "req-42",
            made,
            made,
            kept,
            kept,
        ]
        assert request_id.get() is None  # the caller's context was never touched
    finally:
        await server.stop()


@pytest.fixture
async def rollup_app(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[RollupApp]:
    app = await build_rollup(RollupConfig.from_env({**service_env, "ROLLUP_SCHEDULER": "false"}))
    await app.server.start()
    yield app
    await app.server.stop()


async def test_sdk_and_gateway_calls_carry_the_request_id_to_the_services_logs(
    db: asyncpg.Pool, service_env: dict[str, str], rollup_app: RollupApp
) -> None:
    ingestor = Ingestor(
        db, None, tiers=("free", "pro"), timezone=UTC_ZONE, sheets=_sheets(UTC_ZONE)
    )
    await ingestor.store([job(episode_id="ep-1"), llm(episode_id="ep-1")])
    rollup_addr = f"127.0.0.1:{rollup_app.server.port}"

    with json_log_lines() as lines, sdk_request_id("sdk-req-7"):
        assert await mark_episode_complete("ep-1", target=rollup_addr) is not None
    assert {line.get("request_id") for line in lines if line["msg"] == "rolled up"} == {"sdk-req-7"}

    env = {
        **service_env,
        "ROLLUP_ADDR": rollup_addr,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}",
        "GATEWAY_SESSION_SECRET": "s",
    }
    app = create_app(GatewayConfig.from_env(env))
    requests = sample(
        "costguard_gateway_http_requests_total",
        route="/api/admin/cost/episodes/{episode_id}/recalculate",
        method="POST",
        status="200",
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as gw,
    ):
        with json_log_lines() as lines:
            reply = await gw.post(
                "/api/admin/cost/episodes/ep-1/recalculate",
                headers={"Authorization": f"Bearer {ADMIN}", "X-Request-ID": "gw-req-9"},
            )
        assert reply.status_code == 200
        assert reply.headers["x-request-id"] == "gw-req-9"
        made = (await gw.get("/healthz")).headers["x-request-id"]
        assert len(made) == 32
    assert {line.get("request_id") for line in lines if line["msg"] == "rolled up"} == {"gw-req-9"}
    assert (
        sample(
            "costguard_gateway_http_requests_total",
            route="/api/admin/cost/episodes/{episode_id}/recalculate",
            method="POST",
            status="200",
        )
        == requests + 1
    )


# Retention


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


async def _events_on(ingestor: Ingestor, day: date, jobs: int) -> None:
    at = ts(_noon(day))
    await ingestor.store(
        [job(started_at=at, finished_at=at, created_at=at) for _ in range(jobs)]
        + [llm(created_at=at), cost(created_at=at)]
    )


async def _count(db: asyncpg.Pool, table: str, day: date) -> int:
    time_of = (
        "coalesce(started_at, created_at)" if table == "telemetry_job_events" else "created_at"
    )
    return int(
        await db.fetchval(
            f"SELECT count(*) FROM {table} WHERE ({time_of} AT TIME ZONE 'UTC')::date = $1", day
        )
    )


TABLES = ("telemetry_job_events", "telemetry_llm_events", "cost_events")


@pytest.fixture
def today() -> date:
    return datetime.now(UTC_ZONE).date()


@pytest.fixture
async def aged(db: asyncpg.Pool, today: date) -> dict[str, date]:
    """Old dates in each state retention cares about, and a recent one; 7 jobs on each."""
    days = {
        "rolled": today - timedelta(days=500),
        "never_rolled": today - timedelta(days=450),
        "dirty_again": today - timedelta(days=420),
        "recent": today - timedelta(days=2),
    }
    ingestor = Ingestor(
        db, None, tiers=("free", "pro"), timezone=UTC_ZONE, sheets=_sheets(UTC_ZONE)
    )
    for day in days.values():
        await _events_on(ingestor, day, jobs=7)
    for name in ("rolled", "dirty_again", "recent"):
        await rollup_costs_for_date(db, days[name], tz=UTC_ZONE, pricing=PRICING)
    # Never rolled up, and not dirty either (rows restored by COPY, say); dirty again: a
    # late event arrived after its rollup.
    await db.execute("DELETE FROM rollup_dirty_dates WHERE date = $1", days["never_rolled"])
    await db.execute("INSERT INTO rollup_dirty_dates (date) VALUES ($1)", days["dirty_again"])
    return days


async def test_retention_deletes_old_raw_events_in_batches_and_keeps_the_rest(
    db: asyncpg.Pool, aged: dict[str, date]
) -> None:
    aggregates = await db.fetchrow(
        "SELECT jobs, cost_usd FROM cost_global_daily WHERE date = $1", aged["rolled"]
    )
    deleted_before = sample("costguard_retention_deleted_rows_total", table="telemetry_job_events")

    pruned = await prune_raw_events(db, retention_days=400, tz=UTC_ZONE, batch_size=3, pause_s=0)

    assert pruned is not None
    assert pruned.horizon == aged["recent"] + timedelta(days=2) - timedelta(days=400)
    assert pruned.deleted == {
        "telemetry_job_events": 7,
        "telemetry_llm_events": 1,
        "cost_events": 1,
    }
    assert pruned.kept == {"telemetry_job_events": 14, "telemetry_llm_events": 2, "cost_events": 2}
    assert pruned.batches == 3 + 1 + 1  # 7 jobs in batches of 3, then one per other table
    for table in TABLES:
        assert await _count(db, table, aged["rolled"]) == 0
        for kept in ("never_rolled", "dirty_again", "recent"):
            assert await _count(db, table, aged[kept]) > 0, (table, kept)
    assert aggregates == await db.fetchrow(
        "SELECT jobs, cost_usd FROM cost_global_daily WHERE date = $1", aged["rolled"]
    )
    assert aggregates is not None
    assert aggregates["jobs"] == 7
    # Dates before the horizon are never rolled up again: their groups went with them.
    grouped = await db.fetch("SELECT DISTINCT date FROM rollup_day_groups ORDER BY date")
    assert [row["date"] for row in grouped] == [aged["recent"]]
    marks = await db.fetch("SELECT date FROM rollup_day_watermarks ORDER BY date")
    assert [row["date"] for row in marks] == [aged["recent"]]
    assert (
        sample("costguard_retention_deleted_rows_total", table="telemetry_job_events")
        == deleted_before + 7
    )
    assert await prune_raw_events(db, retention_days=0, tz=UTC_ZONE) is None


async def test_a_rollup_past_the_horizon_is_refused(
    db: asyncpg.Pool, today: date, rollup_app: RollupApp
) -> None:
    rollups = Rollups(db, tz=UTC_ZONE, pricing=PRICING, retention_days=400)
    with pytest.raises(PastRetention, match="retention horizon"):
        await rollups.run("cli", [today - timedelta(days=401), today - timedelta(days=1)])
    assert await db.fetchval("SELECT count(*) FROM rollup_runs") == 0
    await rollups.run("cli", [today - timedelta(days=400)])  # the horizon itself is kept

    # A late event for a date past the horizon: its dirty mark is dropped, not rolled up.
    stale = today - timedelta(days=450)
    await db.execute("INSERT INTO rollup_dirty_dates (date) VALUES ($1), ($2)", stale, today)
    assert [r.date for r in await rollups.roll_dirty()] == [today]
    assert await db.fetchval("SELECT count(*) FROM rollup_dirty_dates") == 0

    async with aio.insecure_channel(f"127.0.0.1:{rollup_app.server.port}") as channel:
        stub = rollup_pb2_grpc.RollupServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as refused:
            await stub.RollupDate(rollup_pb2.RollupDateRequest(date=stale.isoformat()))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "RETENTION_DAYS=400" in (refused.value.details() or "")


async def _cli(stack: DevStack, *args: str, **extra: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "costguard.rollup", *args,
        env={**os.environ, "DATABASE_URL": stack.postgres.dsn, **extra},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_retention_cli_prunes_and_the_rollup_cli_refuses_past_the_horizon(
    stack: DevStack, db: asyncpg.Pool, aged: dict[str, date]
) -> None:
    code, out, err = await _cli(stack, "retention")
    assert code == 0, err
    assert "telemetry_job_events  deleted=7  kept=14" in out.splitlines()
    assert "cost_events  deleted=1  kept=2" in out.splitlines()
    assert await _count(db, "telemetry_job_events", aged["rolled"]) == 0

    code, out, _ = await _cli(stack, "retention", RETENTION_DAYS="0")
    assert (code, out.strip()) == (0, "retention is off (RETENTION_DAYS=0)")

    code, _, err = await _cli(stack, "rollup", "--date", aged["rolled"].isoformat())
    assert code == 2
    assert "before the retention horizon" in err
    assert await db.fetchval("SELECT count(*) FROM rollup_runs") == 0
    # The documented escape hatch for a date whose events are intact.
    code, out, err = await _cli(
        stack, "rollup", "--date", aged["never_rolled"].isoformat(), RETENTION_DAYS="0"
    )
    assert code == 0, err
    assert out.startswith(f"{aged['never_rolled']}  users=")
    assert "  events=9  " in out


# The runbook

RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)


async def test_every_command_and_statement_in_the_runbook_runs(
    stack: DevStack, db: asyncpg.Pool
) -> None:
    commands = [
        line.strip() for block in _blocks("bash") for line in block.splitlines() if line.strip()
    ]
    assert len(commands) >= 6
    env = {
        **os.environ,
        "DATABASE_URL": stack.postgres.dsn,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # `python` is the venv's
    }
    for command in commands:
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", command, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate()
        assert process.returncode == 0, (command, err.decode())
    for statement in _blocks("sql"):
        await db.execute(statement)
    assert (
        await db.fetchval("SELECT daily_cpu_ms_cap FROM cost_budgets WHERE apply_scope = 'free'")
        == 100_000_000
    )
