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
from decimal import Decimal
from pathlib import Path

import asyncpg
import boto3
import pytest

from costguard.sdk.aws_lambda import invocation_event_id
from tests.fake_gemini import FakeGemini, serve_fake_gemini
from tests.fake_openai import FakeOpenAI, serve_fake_openai
from tests.moto_server import ACCESS_KEY, REGION, SECRET_KEY, running_moto_server

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


def test_every_provider_has_an_example() -> None:
    assert {"openai", "openai-compatible", "gemini", "aws", "lambda"} <= set(EXAMPLES)


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
