"""The rollup service: dirty dates, the schedule, RPCs, the CLI, episodes on completion."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import grpc
import pytest
from grpc import aio

from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.devstack import DevStack, free_port
from costguard.rollup.config import RollupConfig
from costguard.rollup.rollup import Pricing
from costguard.rollup.runs import Rollups
from costguard.rollup.schedule import Scheduler, last_nightly, missed, next_nightly
from costguard.rollup.server import RollupApp, build
from costguard.sdk import (
    LlmCall,
    TelemetryClient,
    UserContext,
    close,
    configure,
    job_telemetry,
    mark_episode_complete,
    record_llm_event,
    schedule_episode_cost,
    track_cost_event,
)
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import build as build_telemetry
from costguard.v1 import rollup_pb2, rollup_pb2_grpc
from tests.events import job, ts

UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture
async def rollup_app(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[RollupApp]:
    app = await build(RollupConfig.from_env({**service_env, "ROLLUP_SCHEDULER": "false"}))
    await app.server.start()
    yield app
    await app.server.stop()


async def test_a_late_event_marks_its_day_dirty_and_is_re_rolled(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    telemetry = await build_telemetry(TelemetryConfig.from_env(service_env))
    rollups = Rollups(
        db, tz=UTC_ZONE, pricing=Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
    )
    past = datetime.now(UTC) - timedelta(days=3)
    await telemetry.ingestor.store(
        [job(user_id="ann", cpu_ms=100, created_at=ts(past), started_at=ts(past))]
    )
    assert await db.fetchval("SELECT array_agg(date) FROM rollup_dirty_dates") == [past.date()]
    await rollups.roll_dirty()
    assert await db.fetchval("SELECT cpu_ms FROM cost_user_daily WHERE user_id = 'ann'") == 100

    late = [job(user_id="ann", cpu_ms=50, created_at=ts(past), started_at=ts(past))]
    await telemetry.ingestor.store(late)
    assert (await rollups.roll_dirty())[0].date == past.date()
    assert await db.fetchval("SELECT cpu_ms FROM cost_user_daily WHERE user_id = 'ann'") == 150
    assert await db.fetchval("SELECT count(*) FROM rollup_dirty_dates") == 0
    await telemetry.server.stop()


def test_the_nightly_time_is_0230_local_across_dst() -> None:
    new_york = ZoneInfo("America/New_York")
    before = datetime(2026, 3, 7, 12, 0, tzinfo=new_york)
    assert next_nightly(before, new_york) == datetime(2026, 3, 8, 2, 30, tzinfo=new_york)
    after = datetime(2026, 3, 8, 2, 30, tzinfo=new_york)
    assert next_nightly(after, new_york).date() == date(2026, 3, 9)
    assert last_nightly(after, new_york) == after
    assert missed(None, after, new_york)
    assert not missed(after + timedelta(minutes=1), after + timedelta(hours=1), new_york)
    assert missed(after - timedelta(days=1), after + timedelta(hours=1), new_york)


async def test_a_missed_nightly_run_is_caught_up_at_start(
    rollup_app: RollupApp, db: asyncpg.Pool
) -> None:
    scheduler = Scheduler(
        rollup_app.rollups,
        nightly_at=datetime.now(UTC).time().replace(microsecond=0),
        dirty_interval_s=60,
    )
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert await scheduler.catch_up()  # never ran: catch up
    assert not await scheduler.catch_up()  # now it has
    run = await db.fetchrow("SELECT * FROM rollup_runs WHERE trigger = 'nightly'")
    assert run is not None
    assert (run["status"], run["from_date"]) == ("succeeded", yesterday)


@pytest.fixture
async def stub(rollup_app: RollupApp) -> AsyncIterator[rollup_pb2_grpc.RollupServiceAsyncStub]:
    async with aio.insecure_channel(f"127.0.0.1:{rollup_app.server.port}") as channel:
        yield rollup_pb2_grpc.RollupServiceStub(channel)


async def test_rpcs_roll_up_recalculate_and_report(
    stub: rollup_pb2_grpc.RollupServiceAsyncStub, db: asyncpg.Pool
) -> None:
    noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
    await db.execute(
        "INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain, cpu_ms, "
        "success, created_at, episode_id, podcast_id) "
        "VALUES ($1, 'j', 'u', 'pro', 'audio', 5000, true, $2, 'ep9', 'p1')",
        uuid.uuid4(),
        noon,
    )
    one = await stub.RollupDate(rollup_pb2.RollupDateRequest(date="2026-11-20"))
    assert [(d.date, d.events, d.cost_usd) for d in one.dates] == [("2026-11-20", 1, "0.00010000")]
    several = await stub.RollupRange(
        rollup_pb2.RollupRangeRequest(from_date="2026-11-19", to_date="2026-11-21")
    )
    assert [d.date for d in several.dates] == ["2026-11-19", "2026-11-20", "2026-11-21"]
    entity = await stub.RecalculateEntity(
        rollup_pb2.RecalculateEntityRequest(entity_type="episode", entity_id="ep9")
    )
    assert (entity.cost.total_cost_usd, entity.cost.podcast_id, entity.cost.event_count) == (
        "0.00010000",
        "p1",
        1,
    )
    status = await stub.GetRunStatus(rollup_pb2.RunStatusRequest(limit=5))
    assert [r.trigger for r in status.runs] == ["entity", "rpc", "rpc"]
    assert {r.status for r in status.runs} == {"succeeded"}


@pytest.mark.parametrize(
    ("call", "request_message", "field"),
    [
        ("RollupDate", rollup_pb2.RollupDateRequest(date="20-11-2026"), "date"),
        (
            "RollupRange",
            rollup_pb2.RollupRangeRequest(from_date="2026-11-20", to_date="2026-11-01"),
            "to_date",
        ),
        (
            "RollupRange",
            rollup_pb2.RollupRangeRequest(from_date="2020-01-01", to_date="2026-01-01"),
            "to_date",
        ),
        (
            "RecalculateEntity",
            rollup_pb2.RecalculateEntityRequest(entity_type="show", entity_id="x"),
            "entity_type",
        ),
        (
            "RecalculateEntity",
            rollup_pb2.RecalculateEntityRequest(entity_type="episode"),
            "entity_id",
        ),
        ("GetRunStatus", rollup_pb2.RunStatusRequest(limit=10_000), "limit"),
    ],
)
async def test_bad_requests_name_the_field(
    stub: rollup_pb2_grpc.RollupServiceAsyncStub, call: str, request_message: object, field: str
) -> None:
    with pytest.raises(aio.AioRpcError) as failure:
        await getattr(stub, call)(request_message)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (failure.value.details() or "").startswith(f"{field}: ")


async def test_marking_an_episode_complete_prices_it_and_never_fails_the_caller(
    rollup_app: RollupApp, db: asyncpg.Pool
) -> None:
    await db.execute(
        "INSERT INTO telemetry_job_events "
        "(event_id, job_name, user_id, tier, domain, cpu_ms, success, episode_id) "
        "VALUES ($1, 'j', 'u', 'pro', 'audio', 1000, true, 'ep-done')",
        uuid.uuid4(),
    )
    cost = await mark_episode_complete("ep-done", target=f"127.0.0.1:{rollup_app.server.port}")
    assert cost is not None
    assert cost.total_cost_usd == "0.00002000"
    assert (
        await mark_episode_complete("ep-x", target=f"127.0.0.1:{free_port()}", timeout_s=1) is None
    )
    assert (
        await mark_episode_complete("never-seen", target=f"127.0.0.1:{rollup_app.server.port}")
        is None
    )


async def test_the_cli_rolls_up_a_date_for_the_cronjob(stack: DevStack, db: asyncpg.Pool) -> None:
    env = {**os.environ, "DATABASE_URL": stack.postgres.dsn}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "costguard.rollup", "rollup", "--date", "2026-11-20",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("2026-11-20  users=0  events=0  cost_usd=0")
    assert await db.fetchval("SELECT trigger FROM rollup_runs") == "cli"
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "costguard.rollup", "rollup",
        "--from", "2026-11-20", "--to", "2026-11-01",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await bad.communicate()
    assert bad.returncode == 2
    assert b"to_date is before from_date" in err


async def test_a_reprice_of_a_past_range_reports_the_change(
    stack: DevStack, db: asyncpg.Pool
) -> None:
    await db.execute(
        "INSERT INTO cost_events (event_id, event_type, service, quantity, unit, created_at) "
        "VALUES ($1, 'ses_email', 'ses', 2000, 'emails', '2026-11-21 10:00+00')",
        uuid.uuid4(),
    )
    env = {**os.environ, "DATABASE_URL": stack.postgres.dsn}

    async def cli(*args: str, **extra: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "costguard.rollup", "rollup", *args,
            env={**env, **extra}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return out.decode()

    await cli("--from", "2026-11-20", "--to", "2026-11-21")
    fix = {"COST_AWS_SES_PER_1K_EMAILS": "0.12"}
    assert "cost_usd=0.20000000" in await cli("--date", "2026-11-21", **fix)  # stored prices kept
    lines = (
        await cli("--from", "2026-11-20", "--to", "2026-11-21", "--reprice", **fix)
    ).splitlines()
    assert "cost_usd=0.00000000  was=0.00000000  change=+0.00000000" in lines[0]
    assert "cost_usd=0.24000000  was=0.20000000  change=+0.04000000" in lines[1]


@pytest.fixture
async def app_client(
    telemetry_addr: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TelemetryClient]:
    """The application's own default client, as ``configure()`` makes it."""
    monkeypatch.setenv("COSTGUARD_SPILL_DIR", str(tmp_path / "spill"))
    monkeypatch.delenv("COSTGUARD_SERVICE_TOKEN", raising=False)
    monkeypatch.delenv("COSTGUARD_DURABLE", raising=False)
    yield configure(telemetry_addr)
    await close()


async def test_an_episode_completed_right_after_its_job_costs_every_event(
    rollup_app: RollupApp, app_client: TelemetryClient, db: asyncpg.Pool
) -> None:
    ctx = UserContext("host-1", "pro", episode_id="ep-now", podcast_id="pod-now")
    async with job_telemetry("publish", ctx) as run:
        run.add_rows(read=1200, written=800)
        record_llm_event(LlmCall(llm_model="gpt-4o-mini", input_tokens=1000, output_tokens=100))
        track_cost_event("ses_email", "ses", 2, "emails")
    # Nothing has left the process yet (the shipper cannot have run: no await since the
    # first event), so only mark_episode_complete's own flush can deliver the three.
    assert (app_client.buffered, app_client.stats.sent) == (3, 0)
    cost = await mark_episode_complete("ep-now", target=f"127.0.0.1:{rollup_app.server.port}")

    assert cost is not None
    cpu_ms = await db.fetchval("SELECT cpu_ms FROM telemetry_job_events")
    job_cost = cpu_ms * Decimal("0.00000002") + Decimal(2000) / 1000 * Decimal("0.0005")
    llm_cost = 1000 * Decimal("0.15") / 10**6 + 100 * Decimal("0.60") / 10**6  # gpt-4o-mini
    ses_cost = 2 * Decimal("0.10") / 1000
    assert cost.event_count == 3
    assert Decimal(cost.total_cost_usd) == job_cost + llm_cost + ses_cost
    assert {k: Decimal(v) for k, v in cost.cost_by_category.items()} == {
        "compute": job_cost,
        "ai": llm_cost,
        "aws": ses_cost,
    }
    assert (cost.entity_id, cost.podcast_id) == ("ep-now", "pod-now")


async def test_an_episode_cost_is_calculated_even_when_the_flush_times_out(
    rollup_app: RollupApp, db: asyncpg.Pool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await db.execute(
        "INSERT INTO telemetry_job_events "
        "(event_id, job_name, user_id, tier, domain, cpu_ms, success, episode_id) "
        "VALUES ($1, 'j', 'u', 'pro', 'audio', 1000, true, 'ep-late')",
        uuid.uuid4(),
    )
    nowhere = TelemetryClient(f"127.0.0.1:{free_port()}", spill_dir=tmp_path)
    track_cost_event("ses_email", "ses", 1, "emails", episode_id="ep-late", client=nowhere)
    try:
        with caplog.at_level(logging.INFO, logger="costguard.sdk._entities"):
            cost = await mark_episode_complete(
                "ep-late",
                target=f"127.0.0.1:{rollup_app.server.port}",
                client=nowhere,
                flush_timeout_s=0.3,
            )
        assert cost is not None
        assert (cost.total_cost_usd, cost.event_count) == ("0.00002000", 1)  # the stored job
        warning, info = [r for r in caplog.records if r.name == "costguard.sdk._entities"]
        assert warning.levelno == logging.WARNING
        assert warning.getMessage().startswith("telemetry not all delivered")
        assert (info.levelno, info.getMessage()) == (logging.INFO, "episode cost calculated")
        assert (info.__dict__["episode_id"], info.__dict__["total_cost_usd"]) == (
            "ep-late",
            "0.00002000",
        )
        assert info.__dict__["event_count"] == 1
    finally:
        await nowhere.close(timeout_s=0.1)


async def test_an_unreachable_rollup_gives_none_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="costguard.sdk._entities"):
        cost = await mark_episode_complete("ep-x", target=f"127.0.0.1:{free_port()}", timeout_s=1)
    assert cost is None
    (record,) = [r for r in caplog.records if r.name == "costguard.sdk._entities"]
    assert (record.levelno, record.getMessage()) == (logging.WARNING, "episode cost not calculated")
    assert (record.__dict__["episode_id"], record.__dict__["code"]) == ("ep-x", "UNAVAILABLE")


class _Awaited(logging.Handler):
    """Sets an event when a record with this message is logged (in the loop's thread)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.seen = asyncio.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.records.append(record)
            self.seen.set()


async def test_a_scheduled_episode_cost_runs_in_the_background_and_never_raises(
    rollup_app: RollupApp, db: asyncpg.Pool
) -> None:
    await db.execute(
        "INSERT INTO telemetry_job_events "
        "(event_id, job_name, user_id, tier, domain, cpu_ms, success, episode_id) "
        "VALUES ($1, 'j', 'u', 'pro', 'audio', 3000, true, 'ep-hook')",
        uuid.uuid4(),
    )
    rollup = f"127.0.0.1:{rollup_app.server.port}"
    task = schedule_episode_cost("ep-hook", target=rollup)
    assert not task.done()  # the caller answers at once
    cost = await task
    assert cost is not None
    assert (cost.total_cost_usd, cost.event_count) == ("0.00006000", 1)

    failed = schedule_episode_cost("ep-hook", target=f"127.0.0.1:{free_port()}", timeout_s=1)
    assert await failed is None
    assert failed.exception() is None

    # Nobody holds this one: the SDK must keep it alive until it has logged its answer.
    logger = logging.getLogger("costguard.sdk._entities")
    done = _Awaited("episode cost calculated")
    logger.addHandler(done)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        schedule_episode_cost("ep-hook", target=rollup)
        gc.collect()
        async with asyncio.timeout(30):
            await done.seen.wait()
    finally:
        logger.removeHandler(done)
        logger.setLevel(previous)
    assert done.records[0].__dict__["episode_id"] == "ep-hook"
