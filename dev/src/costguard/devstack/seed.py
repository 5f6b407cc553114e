"""Demo data for ``make dev``: 30 days of synthetic telemetry, budgets, then a rollup.

Written straight into Postgres in a few bulk statements, and only into an empty
database, so running ``make dev`` again keeps the data it already has.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from costguard.common.storage import record_objects

USERS = [
    (f"user-{i:02d}", ("free", "free", "free", "pro", "pro", "enterprise")[i % 6])
    for i in range(24)
]
DOMAINS = ("transcription", "summaries", "search", "publishing")
MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "house-model")
CONTEXT_TYPES = ("insight", "summary", "chat")
DAYS = 30


def _jobs(rng: random.Random, day: datetime) -> list[tuple[Any, ...]]:
    rows = []
    for user, tier in USERS:
        for _ in range(rng.randint(2, 12) * (3 if tier == "enterprise" else 1)):
            started = day + timedelta(seconds=rng.randint(0, 86_000))
            wait = rng.randint(0, 90_000 if tier == "free" else 20_000)
            duration = rng.randint(200, 60_000)
            episode = rng.randint(1, 400)
            rows.append(
                (
                    uuid.uuid4(),
                    rng.choice(("transcribe", "summarise", "index", "publish")),
                    user,
                    tier,
                    rng.choice(DOMAINS),
                    started - timedelta(milliseconds=wait),
                    started,
                    started + timedelta(milliseconds=duration),
                    duration,
                    wait,
                    rng.randint(50, duration),
                    rng.randint(0, 5_000),
                    rng.randint(0, 800),
                    rng.random() > 0.04,
                    f"ep-{episode}",
                    f"pod-{episode % 12}",
                    started,
                )
            )
    return rows


def _llm_calls(rng: random.Random, day: datetime) -> list[tuple[Any, ...]]:
    rows = []
    for user, tier in USERS:
        for _ in range(rng.randint(1, 8)):
            tokens_in = rng.randint(300, 12_000)
            cached = rng.randint(0, tokens_in // 2)
            out = rng.randint(50, 2_000)
            episode = rng.randint(1, 400)
            rows.append(
                (
                    uuid.uuid4(),
                    user,
                    tier,
                    rng.choice(DOMAINS),
                    rng.choice(MODELS),
                    tokens_in,
                    cached,
                    out,
                    min(out, rng.randint(0, 300)),
                    rng.randint(200, 9_000),
                    rng.random() < 0.2,
                    f"ep-{episode}",
                    f"pod-{episode % 12}",
                    day + timedelta(seconds=rng.randint(0, 86_000)),
                    rng.choice(CONTEXT_TYPES),
                    True,
                )
            )
    return rows


def _cloud(rng: random.Random, day: datetime) -> list[tuple[Any, ...]]:
    """Cost events in the podcast app's vocabulary (docs/cost-events.md), quantity first."""

    def upload() -> tuple[Decimal, dict[str, Any]]:
        size = rng.randint(10_000, 80_000_000)
        return Decimal(1), {
            "operation": "PutObject",
            "s3_key": f"audio/{uuid.uuid4().hex[:8]}.mp3",
            "file_size_mb": size / 2**20,
            "size_bytes": size,
            "content_type": "audio/mpeg",
        }

    def download() -> tuple[Decimal, dict[str, Any]]:
        size = rng.randint(10_000, 80_000_000)
        metadata = {"operation": "GetObject", "size_bytes": size, "file_size_mb": size / 2**20}
        return Decimal(1), metadata

    def emails() -> tuple[Decimal, dict[str, Any]]:
        batch, failed = rng.randint(1, 50), rng.randint(0, 2)
        metadata = {"template": "new-episode", "batch_size": batch}
        sent = max(batch - failed, 1)
        return Decimal(sent), {**metadata, "success_count": sent, "failed_count": batch - sent}

    def message() -> tuple[Decimal, dict[str, Any]]:
        return Decimal(1), {
            "operation": "SendMessage",
            "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            "message_count": 1,
            "body_bytes": rng.randint(100, 200_000),
        }

    def invocation() -> tuple[Decimal, dict[str, Any]]:
        count = rng.randint(1, 5)
        return Decimal(count), {
            "function_name": "transcode",
            "duration_seconds": count * rng.randint(100, 30_000) / 1000,
            "memory_mb": rng.choice((512, 1024, 2048)),
        }

    def text() -> tuple[Decimal, dict[str, Any]]:
        tokens_in, tokens_out = rng.randint(300, 12_000), rng.randint(50, 2_000)
        return Decimal(tokens_in + tokens_out), {
            "model": rng.choice(("gemini-2.0-flash", "gemini-2.5-flash")),
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "operation": "generateText",
        }

    def speech() -> tuple[Decimal, dict[str, Any]]:
        tokens_in, tokens_out = rng.randint(200, 3_000), rng.randint(2_000, 40_000)
        return Decimal(tokens_in + tokens_out), {
            "model": "gemini-2.5-flash-preview-tts",
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "operation": "generateSpeech",
        }

    def images() -> tuple[Decimal, dict[str, Any]]:
        metadata = {"model": "imagen-4.0-generate-001", "operation": "generateImages"}
        return Decimal(rng.randint(1, 4)), metadata

    kinds = [
        ("s3_operation", "s3_put", "requests", upload),
        ("s3_operation", "s3_get", "requests", download),
        ("ses_email", "ses", "emails", emails),
        ("sqs_message", "sqs", "messages", message),
        ("lambda_invocation", "lambda", "requests", invocation),
        ("ai_api_call", "gemini_text", "tokens", text),
        ("ai_api_call", "gemini_tts", "tokens", speech),
        ("ai_api_call", "gemini_image", "images", images),
    ]
    rows = []
    for _ in range(rng.randint(40, 90)):
        event_type, service, unit, make = rng.choice(kinds)
        quantity, metadata = make()
        user, tier = rng.choice(USERS)
        episode = rng.randint(1, 400)
        rows.append(
            (
                uuid.uuid4(),
                event_type,
                service,
                quantity,
                unit,
                json.dumps(metadata),
                user,
                tier,
                f"ep-{episode}",
                f"pod-{episode % 12}",
                day + timedelta(seconds=rng.randint(0, 86_000)),
            )
        )
    return rows


async def seed_demo(conn: asyncpg.Connection, *, now: datetime | None = None) -> bool:
    """Write the demo data; False (and nothing written) when there is data already."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM telemetry_job_events)"):
        return False
    rng = random.SystemRandom()
    today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    jobs, calls, cloud = [], [], []
    for back in range(DAYS, -1, -1):
        day = today - timedelta(days=back)
        jobs += _jobs(rng, day)
        calls += _llm_calls(rng, day)
        cloud += _cloud(rng, day)
    cutoff = now or datetime.now(UTC)
    async with conn.transaction():
        await conn.copy_records_to_table(
            "telemetry_job_events",
            records=[r for r in jobs if r[16] <= cutoff],
            columns=(
                "event_id",
                "job_name",
                "user_id",
                "tier",
                "domain",
                "queued_at",
                "started_at",
                "finished_at",
                "duration_ms",
                "queue_wait_ms",
                "cpu_ms",
                "rows_read",
                "rows_written",
                "success",
                "episode_id",
                "podcast_id",
                "created_at",
            ),
        )
        await conn.copy_records_to_table(
            "telemetry_llm_events",
            records=[r for r in calls if r[13] <= cutoff],
            columns=(
                "event_id",
                "user_id",
                "tier",
                "domain",
                "llm_model",
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "reasoning_tokens",
                "duration_ms",
                "cache_hit",
                "episode_id",
                "podcast_id",
                "created_at",
                "context_type",
                "success",
            ),
        )
        stored_cloud = [r for r in cloud if r[10] <= cutoff]
        await conn.copy_records_to_table(
            "cost_events",
            records=stored_cloud,
            columns=(
                "event_id",
                "event_type",
                "service",
                "quantity",
                "unit",
                "metadata",
                "user_id",
                "tier",
                "episode_id",
                "podcast_id",
                "created_at",
            ),
        )
        # The uploads' objects, as telemetry would have recorded them: held from then on.
        await record_objects(conn, [r[0] for r in stored_cloud], tz=ZoneInfo("UTC"))
        await conn.execute(
            "INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap, "
            "llm_input_tokens_cap, llm_output_tokens_cap, daily_cost_usd_cap, updated_by) "
            "VALUES ('global', 40000000, 5000, 3000000, 9223372036854775807, 25, 'demo'), "
            "('free', 3000000, 600, 500000, 9223372036854775807, NULL, 'demo') "
            "ON CONFLICT (apply_scope) DO NOTHING"
        )
    return True
