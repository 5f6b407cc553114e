"""Real servers for the suite: one private Postgres and Redis per session, clean per test."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import asyncpg
import pytest
from hypothesis import settings
from redis.asyncio import Redis

from costguard.common.db import create_pool
from costguard.common.migrate import migrate_up
from costguard.devstack import DevStack, LocalPostgres
from costguard.sdk import TelemetryClient
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.event_tables import SDK, Origin
from costguard.telemetry.ingest import IngestResult
from costguard.telemetry.server import build, build_server
from costguard.v1 import telemetry_pb2
from tests.moto_server import reset_moto, running_moto_server

with warnings.catch_warnings():
    # google-genai 3.3's types.py holds an invalid escape sequence (a "\\/" in a field's
    # description). Python 3.11 warns of it each time it compiles the module, which is every
    # import where bytecode is not written (PYTHONDONTWRITEBYTECODE), and the suite's
    # filterwarnings=error turns that warning into a SyntaxError. Imported once here, quietly,
    # it is compiled once; every later import finds it loaded.
    warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
    importlib.import_module("google.genai")

# Hypothesis fails an example slower than 200 ms by default: a timing assertion, which a
# busy machine trips. Speed is the benchmarks' to measure; properties check answers.
settings.register_profile("costguard", deadline=None)
settings.load_profile("costguard")

# Tables the tests may write; emptied before each test that asks for a clean database.
_DATA_TABLES = (
    "telemetry_job_events",
    "telemetry_llm_events",
    "cost_events",
    "cost_user_daily",
    "cost_global_daily",
    "cost_breakdown_daily",
    "throttle_decisions_daily",
    "throttle_user_decisions_daily",
    "cost_budgets",
    "entity_costs",
    "cost_monthly_summary",
    "budget_alerts",
    "alert_deliveries",
    "price_sheets",
    "price_sheet_days",
    "rollup_dirty_dates",
    "rollup_runs",
    "entity_costs_daily",
    "s3_objects",
    "rollup_day_groups",
    "rollup_day_watermarks",
    "telemetry_unstamped_events",
)


@pytest.fixture(autouse=True)
def own_spill_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's SDK clients spill to a folder of its own: an event one test left on disk
    (or a run before this one, in the shared default folder) is never replayed into another."""
    folder = tmp_path / "spill"
    monkeypatch.setenv("COSTGUARD_SPILL_DIR", str(folder))
    return folder


async def _migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate_up(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    root = Path(tempfile.mkdtemp(prefix="costguard-test-"))
    root.chmod(0o755)  # Postgres runs as an unprivileged user and must reach its folder
    running = DevStack(root, durable=False).start()
    try:
        asyncio.run(_migrate(running.postgres.dsn))
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def pool(stack: DevStack) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(stack.postgres.dsn, max_size=20)
    yield created
    await created.close()


@pytest.fixture(scope="session")
async def redis_client(stack: DevStack) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.redis.url, decode_responses=True)
    yield client
    await client.aclose()


async def empty_database(pool: asyncpg.Pool, redis_client: Redis) -> asyncpg.Pool:
    """Every data table emptied and Redis flushed: for a fixture of a wider scope than ``db``."""
    await pool.execute(f"TRUNCATE {', '.join(_DATA_TABLES)} RESTART IDENTITY")
    await redis_client.flushdb()
    return pool


@pytest.fixture
async def db(pool: asyncpg.Pool, redis_client: Redis) -> asyncpg.Pool:
    """The session pool, with every data table emptied and Redis flushed."""
    return await empty_database(pool, redis_client)


def stack_env(stack: DevStack) -> dict[str, str]:
    """Environment for a service under test, listening on a free loopback port."""
    return {
        "DATABASE_URL": stack.postgres.dsn,
        "REDIS_URL": stack.redis.url,
        "GRPC_LISTEN": "127.0.0.1:0",
        "SHUTDOWN_GRACE_SECONDS": "2",
        "METRICS_PORT": "0",  # many servers share this process; a test that scrapes sets one
        "OTLP_HTTP_PORT": "0",  # a free port: many telemetry servers run at once
    }


@pytest.fixture
def service_env(stack: DevStack) -> dict[str, str]:
    """Environment for a service under test, listening on a free loopback port."""
    return stack_env(stack)


@pytest.fixture
async def telemetry_addr(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[str]:
    """A real telemetry gRPC server on a free loopback port, over the clean database."""
    server = await build_server(TelemetryConfig.from_env(service_env))
    port = await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop()


@pytest.fixture
async def telemetry(telemetry_addr: str) -> AsyncIterator[TelemetryClient]:
    """An SDK telemetry client of the real telemetry service (a module may define its own)."""
    client = TelemetryClient(telemetry_addr)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A real moto server on loopback, one per test module."""
    with running_moto_server() as url:
        yield url


@pytest.fixture
async def moto(moto_server: str) -> str:
    """The moto server's URL, with every resource from earlier tests forgotten."""
    await reset_moto(moto_server)
    return moto_server


@pytest.fixture
async def slow_telemetry_addr(
    db: asyncpg.Pool, service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A real telemetry server that takes 20 ms longer to store each batch: a loaded
    database, so that the SDK's buffer fills while its sends are still in flight."""
    telemetry = await build(TelemetryConfig.from_env(service_env))
    store = telemetry.ingestor.store

    async def slow_store(
        events: Sequence[telemetry_pb2.TelemetryEvent], *, batch: int = 0, origin: Origin = SDK
    ) -> IngestResult:
        await asyncio.sleep(0.02)
        return await store(events, batch=batch, origin=origin)

    monkeypatch.setattr(telemetry.ingestor, "store", slow_store)
    telemetry.reconciler.start()
    port = await telemetry.server.start()
    yield f"127.0.0.1:{port}"
    await telemetry.server.stop()


@pytest.fixture
async def own_postgres(
    stack: DevStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalPostgres]:
    """A Postgres of its own: the test stops it, which the others must never see."""
    root = tmp_path_factory.mktemp("outage")
    root.chmod(0o755)
    postgres = LocalPostgres(Path(str(root)) / "pg", durable=False)
    await asyncio.to_thread(postgres.start)
    await _migrate(postgres.dsn)
    yield postgres
    await asyncio.to_thread(postgres.stop)
