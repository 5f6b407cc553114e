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
import pytest

from tests.fake_gemini import FakeGemini, serve_fake_gemini
from tests.fake_openai import FakeOpenAI, serve_fake_openai

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
    assert {"openai", "openai-compatible", "gemini"} <= set(EXAMPLES)


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


async def test_the_openai_compatible_example(tmp_path: Path) -> None:
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
