"""OpenAI-compatible providers: the instrumented client records who serves the calls, from
its base URL, so each provider's own prices apply.

The real ``openai.AsyncOpenAI`` runs against the fake OpenAI server on loopback (a host no
provider owns, mapped to one with ``provider_hosts``), events go through the real telemetry
service and are read back, priced, from Postgres.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest
from openai import AsyncAzureOpenAI, AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from costguard.sdk import TelemetryClient, UserContext
from costguard.sdk.openai import DEFAULT_PROVIDER, PROVIDER_HOSTS, instrument_openai, provider_of
from tests.fake_openai import FakeOpenAI, serve_fake_openai

ALICE = UserContext("user-7", "pro")
MILLION = Decimal(1_000_000)


@pytest.mark.parametrize(
    ("base_url", "provider"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://my-resource.openai.azure.com/openai", "azure"),
        ("https://my-hub.services.ai.azure.com/models", "azure"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.together.xyz/v1", "together"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://api.mistral.ai/v1", "mistral"),
        ("https://api.fireworks.ai/inference/v1", "fireworks"),
        ("https://API.X.AI/v1", "x-ai"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "google"),
        # Nobody's list price: a local vLLM, or a proxy in front of OpenAI.
        ("http://localhost:8000/v1", DEFAULT_PROVIDER),
        ("http://10.0.0.7:4000", DEFAULT_PROVIDER),
        # A look-alike is not the provider: only the host and its parent domains count.
        ("https://api.groq.com.example.net/v1", DEFAULT_PROVIDER),
        ("https://notopenai.azure.com.evil.test/", DEFAULT_PROVIDER),
    ],
)
def test_the_provider_comes_from_the_host(base_url: str, provider: str) -> None:
    assert provider_of(base_url) == provider


def test_extra_hosts_extend_and_override_the_map() -> None:
    hosts = {**PROVIDER_HOSTS, "llm.internal": "groq", "api.openai.com": "azure"}
    assert provider_of("https://gpu-1.llm.internal/v1", hosts) == "groq"
    assert provider_of("https://api.openai.com/v1", hosts) == "azure"


def test_the_azure_client_is_azure() -> None:
    azure = AsyncAzureOpenAI(
        azure_endpoint="https://my-resource.openai.azure.com",
        api_key="test",
        api_version="2024-10-21",
    )
    assert instrument_openai(azure).provider == "azure"
    # An explicit provider wins over the host.
    assert instrument_openai(azure, provider="openai").provider == "openai"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with serve_fake_openai() as server:
        yield server


async def test_a_groq_served_model_is_stored_and_priced_as_groq_s(
    fake: FakeOpenAI, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    fake.model = "llama-3.3-70b-versatile"
    bare = AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    served = instrument_openai(
        bare, telemetry=telemetry, user_ctx=ALICE, provider_hosts={"127.0.0.1": "groq"}
    )
    unmapped = instrument_openai(bare, telemetry=telemetry, user_ctx=ALICE)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    await served.chat.completions.create(model=fake.model, messages=messages)
    await unmapped.chat.completions.create(model=fake.model, messages=messages)
    await bare.close()
    assert await telemetry.flush()
    rows = await db.fetch(
        "SELECT provider, cost_usd, unpriced_reason FROM telemetry_llm_events ORDER BY id"
    )
    # The fake reports 1,200 input tokens (1,024 of them cached) and 300 output tokens; Groq
    # bills llama-3.3-70b-versatile $0.59 in (no cache discount) and $0.79 out per 1M.
    groq = (1_200 * Decimal("0.59") + 300 * Decimal("0.79")) / MILLION
    assert (rows[0]["provider"], rows[0]["cost_usd"], rows[0]["unpriced_reason"]) == (
        "groq",
        groq,
        None,
    )
    # The same model from a host nobody maps is OpenAI's, which does not sell it: flagged.
    assert rows[1]["provider"] == "openai"
    assert rows[1]["unpriced_reason"] is not None
