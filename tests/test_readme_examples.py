"""The README's provider examples run as written, and record what they say they record.

Each example is the ```python block after an ``<!-- example: NAME -->`` line of README.md,
run unchanged by a fresh interpreter. Only its environment differs from a user's: the
provider clients read their endpoints from the variables they document (``OPENAI_BASE_URL``,
``GOOGLE_GEMINI_BASE_URL``, ``AWS_ENDPOINT_URL``), here the local fakes, and the SDK sends to
the real telemetry service on loopback. The events are then read back from Postgres.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import boto3
import pytest
from redis.asyncio import Redis

from costguard.common.counters import global_key
from costguard.rollup.config import RollupConfig
from costguard.rollup.server import build as build_rollup
from costguard.sdk.aws_lambda import invocation_event_id
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import build as build_throttle
from tests.fake_gemini import FakeGemini, serve_fake_gemini
from tests.fake_openai import FakeOpenAI, serve_fake_openai
from tests.moto_server import ACCESS_KEY, REGION, SECRET_KEY, running_moto_server
from tests.processes import poll_until

NO_CAP = 2**63 - 1

README = Path(__file__).resolve().parent.parent / "README.md"
_EXAMPLE = re.compile(r"<!-- example: ([a-z0-9-]+) -->\s*```python\n(.*?)```", re.DOTALL)
EXAMPLES: dict[str, str] = dict(_EXAMPLE.findall(README.read_text()))


async def run_example(name: str, env: Mapping[str, str], *, after: str = "") -> str:
    """Run the README's example ``name`` (then ``after``, if any) and return its stdout."""
    code = EXAMPLES[name] + after
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return out.decode()


def test_every_python_block_of_the_readme_is_an_example_that_a_test_runs() -> None:
    blocks = re.findall(r"^\s*```python\n", README.read_text(), re.MULTILINE)
    assert len(blocks) == len(EXAMPLES), "a ```python block lacks its <!-- example: --> line"
    tested = set(re.findall(r'run_example\(\s*"([a-z0-9-]+)"', Path(__file__).read_text()))
    assert set(EXAMPLES) == tested


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with serve_fake_openai() as server:
        yield server


def sdk_env(telemetry_addr: str, tmp_path: Path) -> dict[str, str]:
    return {"COSTGUARD_TELEMETRY_ADDR": telemetry_addr, "COSTGUARD_SPILL_DIR": str(tmp_path)}


async def test_the_openai_example(
    fake: FakeOpenAI, telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    env = {
        **sdk_env(telemetry_addr, tmp_path),
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "test",
    }
    out = await run_example("openai", env)
    assert out.strip() == fake.text
    row = await db.fetchrow("SELECT * FROM telemetry_llm_events")
    assert row is not None
    assert (row["user_id"], row["tier"], row["episode_id"], row["provider"]) == (
        "user-42",
        "pro",
        "ep-7",
        "openai",
    )
    assert (row["input_tokens"], row["output_tokens"], row["usage_reported"]) == (1200, 300, True)
    assert row["cost_usd"] > 0


async def test_the_openai_compatible_example() -> None:
    env = {"GROQ_API_KEY": "test", "AZURE_OPENAI_API_KEY": "test"}
    out = await run_example("openai-compatible", env)
    assert out.split() == ["groq", "azure", "together"]


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    with serve_fake_gemini() as server:
        yield server


async def test_the_gemini_example(
    fake_gemini: FakeGemini, telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    env = {
        **sdk_env(telemetry_addr, tmp_path),
        "GOOGLE_GEMINI_BASE_URL": fake_gemini.base_url,
        "GEMINI_API_KEY": "test",
    }
    out = await run_example("gemini", env)
    assert out.strip() == fake_gemini.text
    row = await db.fetchrow("SELECT * FROM telemetry_llm_events")
    assert row is not None
    assert (row["user_id"], row["episode_id"], row["podcast_id"], row["provider"]) == (
        "user-42",
        "ep-7",
        "pod-1",
        "google",
    )
    # The fake's usage: 1,200 prompt tokens (1,024 cached), 300 candidates and 128 thoughts;
    # gemini-2.5-flash is $0.30 input, $0.03 cached, $2.50 output per 1M tokens.
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
        1200,
        1024,
        428,
    )
    by_hand = (176 * Decimal("0.30") + 1024 * Decimal("0.03") + 428 * Decimal("2.50")) / 10**6
    assert row["cost_usd"] == by_hand


def _aws_env(url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


def _make_bucket_and_queue(url: str) -> str:
    session = boto3.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    session.client("s3", endpoint_url=url).create_bucket(Bucket="podcast-audio")
    queue = session.client("sqs", endpoint_url=url).create_queue(QueueName="audio")
    return queue["QueueUrl"]


async def test_the_aws_example(telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path) -> None:
    with running_moto_server() as url:
        queue_url = await asyncio.to_thread(_make_bucket_and_queue, url)
        env = {**sdk_env(telemetry_addr, tmp_path), **_aws_env(url), "AUDIO_QUEUE_URL": queue_url}
        await run_example("aws", env)
    rows = await db.fetch(
        "SELECT event_type, service, quantity, user_id, episode_id, podcast_id, metadata "
        "FROM cost_events ORDER BY id"
    )
    assert [(r["event_type"], r["service"], r["quantity"]) for r in rows] == [
        ("s3_operation", "s3_put", 1),
        ("sqs_message", "sqs", 1),
    ]
    assert {(r["user_id"], r["episode_id"], r["podcast_id"]) for r in rows} == {
        ("user-42", "ep-7", "pod-1")
    }
    assert rows[0]["metadata"]["size_bytes"] == 1027
    assert rows[1]["metadata"]["queue_url"] == queue_url


# How the Lambda runtime calls a handler: an event and a context object.
_INVOKE = """
class Context:
    function_name = "transcribe"
    function_version = "$LATEST"
    memory_limit_in_mb = "512"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self):
        return 30_000


print(handler({"user_id": "user-42", "tier": "pro", "episode": "ep-7"}, Context()))
"""


async def test_the_lambda_example(telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path) -> None:
    out = await run_example("lambda", sdk_env(telemetry_addr, tmp_path), after=_INVOKE)
    assert out.strip() == "{'transcribed': 'ep-7'}"
    row = await db.fetchrow("SELECT * FROM cost_events")
    assert row is not None
    assert (row["event_type"], row["service"], row["user_id"], row["tier"]) == (
        "lambda_invocation",
        "lambda",
        "user-42",
        "pro",
    )
    assert str(row["event_id"]) == invocation_event_id("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    assert (row["metadata"]["memory_mb"], row["metadata"]["cold_start"]) == (512, True)
    assert row["cost_usd"] > 0


async def test_the_jobs_example(telemetry_addr: str, db: asyncpg.Pool, tmp_path: Path) -> None:
    await run_example("jobs", sdk_env(telemetry_addr, tmp_path))
    rows = await db.fetch(
        "SELECT job_name, user_id, tier, episode_id, rows_read, rows_written, success "
        "FROM telemetry_job_events ORDER BY job_name"
    )
    assert [tuple(r) for r in rows] == [
        ("publish", "user-42", "pro", None, 0, 0, True),
        ("transcribe", "user-42", "pro", "ep-7", 120, 3, True),
    ]


@pytest.fixture
async def throttle_addr(db: asyncpg.Pool, service_env: dict[str, str]) -> AsyncIterator[str]:
    app = await build_throttle(ThrottleConfig.from_env(service_env))
    port = await app.server.start()
    yield f"127.0.0.1:{port}"
    await app.server.stop()


async def test_the_throttle_example(
    throttle_addr: str, telemetry_addr: str, db: asyncpg.Pool, redis_client: Redis, tmp_path: Path
) -> None:
    env = {**sdk_env(telemetry_addr, tmp_path), "COSTGUARD_THROTTLE_ADDR": throttle_addr}
    out = await run_example("throttle", env)
    assert out.strip() == "summarising with gpt-4o"
    row = await db.fetchrow(
        "SELECT job_name, user_id, tier, reservation_id FROM telemetry_job_events"
    )
    assert row is not None
    assert (row["job_name"], row["user_id"], row["tier"]) == ("summarise", "user-42", "pro")
    assert row["reservation_id"]  # the check's, so the job's telemetry settled it
    day = datetime.now(UTC).date()
    assert await redis_client.hget(global_key(day), "r_cpu_ms") == "0"

    await db.execute(
        "INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap, "
        "llm_input_tokens_cap, llm_output_tokens_cap) VALUES ('pro', 0, $1, $1, $1)",
        NO_CAP,
    )

    # The throttle hears the change by NOTIFY: wait until the example is deferred.
    async def deferred() -> bool:
        return (await run_example("throttle", env)).startswith("deferred:")

    await poll_until(deferred, interval_s=0.1)


async def test_the_episode_webhook_example(
    telemetry_addr: str, db: asyncpg.Pool, service_env: dict[str, str], tmp_path: Path
) -> None:
    rollup = await build_rollup(RollupConfig.from_env({**service_env, "ROLLUP_SCHEDULER": "false"}))
    port = await rollup.server.start()
    await db.execute(
        "INSERT INTO telemetry_job_events (event_id, job_name, user_id, tier, domain, cpu_ms, "
        "success, episode_id) VALUES (gen_random_uuid(), 'j', 'u', 'pro', 'audio', 1000, true, "
        "'ep-7')"
    )
    env = {**sdk_env(telemetry_addr, tmp_path), "COSTGUARD_ROLLUP_ADDR": f"127.0.0.1:{port}"}
    try:
        out = await run_example("episode-webhook", env, after=_POST_WEBHOOK)
    finally:
        await rollup.server.stop()
    assert out.split() == ["202", "0.00002000"]
    stored = await db.fetchval(
        "SELECT total_cost_usd FROM entity_costs WHERE entity_type = $1 AND entity_id = $2",
        "episode",
        "ep-7",
    )
    assert stored == Decimal("0.00002")


# What the web server does with the example's app: one POST, then the background task's end.
_POST_WEBHOOK = """
import asyncio
import httpx


async def post() -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        reply = await client.post("/hooks/episode-published", json={"episode_id": "ep-7"})
    print(reply.status_code)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    (cost,) = [c for c in await asyncio.gather(*others) if c is not None]
    print(cost.total_cost_usd)


asyncio.run(post())
"""
