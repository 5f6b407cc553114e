"""The insight cache: skip an LLM call whose prompt input has not changed since the last run.

An *insight* is an LLM answer derived from some input (an episode's transcript, a user's
week of activity). ``cached_insight`` hashes that input canonically (SHA-256 of canonical
JSON) and keeps ``(input hash, answer, model)`` per insight key in a store. When the hash
matches, the stored answer is returned without calling the model, and an LLM event with
``cache_hit=True`` (zero tokens, the stored model) is recorded; otherwise the call runs,
the instrumented client (OpenAI or Gemini) records it with the ``insight_key`` set, and the
new answer is stored with the model and provider of that call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Protocol

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, current_user_context
from costguard.sdk._events import LlmCall, record_llm_event

log = logging.getLogger(__name__)

INSIGHT_KEY_PREFIX = "costguard:insight:"
MAX_INSIGHT_KEY_LENGTH = 256  # the width of telemetry_llm_events.insight_key
UNKNOWN_MODEL = "unknown"  # telemetry requires a model; used when no instrumented call told us


@dataclass(frozen=True)
class StoredInsight:
    """What the cache keeps per insight key: the answer, and the model, operation and
    provider of the call that made it (a hit is recorded under them)."""

    input_hash: str
    answer: str
    model: str
    operation: str = "chat.completions"
    stored_at: datetime | None = None
    provider: str = "openai"  # insights stored before Gemini was instrumented are OpenAI's


class InsightStore(Protocol):
    """Where ``cached_insight`` keeps answers: one :class:`StoredInsight` per key."""

    async def load(self, key: str) -> StoredInsight | None: ...

    async def save(self, key: str, insight: StoredInsight) -> None: ...


class MemoryInsightStore:
    """An in-process store, for tests and single-process tools."""

    def __init__(self) -> None:
        self._items: dict[str, StoredInsight] = {}

    async def load(self, key: str) -> StoredInsight | None:
        return self._items.get(key)

    async def save(self, key: str, insight: StoredInsight) -> None:
        self._items[key] = insight


class RedisLike(Protocol):
    """The two commands of a ``redis.asyncio.Redis`` client that the store uses."""

    def get(self, name: str) -> Awaitable[bytes | str | None]: ...

    def set(self, name: str, value: str, ex: int | None = None) -> Awaitable[object]: ...


class RedisInsightStore:
    """Keeps each insight as one JSON string at ``costguard:insight:<key>``.

    ``redis`` is a ``redis.asyncio.Redis`` client (``decode_responses`` either way);
    ``ttl_s`` lets unused insights expire. One key per insight, so Redis Cluster needs
    no hash tags here.
    """

    def __init__(self, redis: RedisLike, *, ttl_s: int | None = None) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def load(self, key: str) -> StoredInsight | None:
        raw = await self._redis.get(INSIGHT_KEY_PREFIX + key)
        if raw is None:
            return None
        fields = json.loads(raw)
        stored_at = fields.pop("stored_at", None)
        return StoredInsight(
            **fields, stored_at=datetime.fromisoformat(stored_at) if stored_at else None
        )

    async def save(self, key: str, insight: StoredInsight) -> None:
        fields = asdict(insight)
        fields["stored_at"] = insight.stored_at.isoformat() if insight.stored_at else None
        await self._redis.set(INSIGHT_KEY_PREFIX + key, json.dumps(fields), ex=self._ttl_s)


@dataclass
class InsightRun:
    """The insight whose answer is being computed; instrumented clients report into it."""

    key: str
    model: str = ""
    operation: str = "chat.completions"
    provider: str = "openai"

    def note_call(self, model: str, operation: str, provider: str = "openai") -> None:
        self.model, self.operation, self.provider = model, operation, provider


_active: ContextVar[InsightRun | None] = ContextVar("costguard_insight_run", default=None)


def active_insight() -> InsightRun | None:
    """The insight computed by the innermost ``cached_insight`` call, if any."""
    return _active.get()


def insight_input_hash(prompt_input: object) -> str:
    """SHA-256 of the canonical JSON of ``prompt_input`` (sorted keys, no whitespace).

    Raises ``TypeError`` or ``ValueError`` for input that JSON cannot represent exactly.
    """
    canonical = json.dumps(
        prompt_input, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def cached_insight(
    key: str,
    prompt_input: object,
    call: Callable[[], Awaitable[str]],
    *,
    store: InsightStore,
    telemetry: TelemetryClient | None = None,
    user_ctx: UserContext | None = None,
) -> str:
    """Return the insight ``key`` for ``prompt_input``, calling the model only when needed.

    ``prompt_input`` is everything the answer depends on (data, prompt version, model
    name), as JSON-compatible values. When its hash equals the stored one, the stored
    answer is returned, ``call`` is not awaited, and an LLM event with ``cache_hit=True``,
    zero tokens and the stored model and provider is recorded. Otherwise ``call()``
    produces the answer: calls it makes through an instrumented client (OpenAI or Gemini)
    are recorded with this ``insight_key``; the answer, the hash and the model, operation
    and provider of its last successful call are stored. An exception from ``call``
    propagates and nothing is stored. A store that fails is logged and treated as a miss,
    so a Redis outage costs tokens, not answers.
    Two concurrent misses for one key both call the model; the later save wins.
    """
    if not 0 < len(key) <= MAX_INSIGHT_KEY_LENGTH:
        raise ValueError(f"insight key must be 1 to {MAX_INSIGHT_KEY_LENGTH} characters")
    input_hash = insight_input_hash(prompt_input)
    started = time.perf_counter()
    stored = await _load(store, key)
    if stored is not None and stored.input_hash == input_hash:
        hit = LlmCall(
            llm_model=stored.model or UNKNOWN_MODEL,
            provider=stored.provider,
            operation=stored.operation,
            duration_ms=int((time.perf_counter() - started) * 1000),
            cache_hit=True,
            insight_key=key,
            context_type=insight_context_type(user_ctx),
            user_ctx=user_ctx,
        )
        record_llm_event(hit, client=telemetry)
        return stored.answer
    run = InsightRun(key)
    token = _active.set(run)
    try:
        answer = await call()
    finally:
        _active.reset(token)
    fresh = StoredInsight(
        input_hash, answer, run.model, run.operation, datetime.now(UTC), run.provider
    )
    await _save(store, key, fresh)
    return answer


async def _load(store: InsightStore, key: str) -> StoredInsight | None:
    try:
        return await store.load(key)
    except Exception:  # a broken cache must not stop the insight
        log.exception("insight cache read failed; calling the model", extra={"key": key})
        return None


async def _save(store: InsightStore, key: str, insight: StoredInsight) -> None:
    try:
        await store.save(key, insight)
    except Exception:  # the answer is still good; the next run pays for it again
        log.exception("insight cache write failed", extra={"key": key})


def insight_context_type(user_ctx: UserContext | None) -> str:
    """What a call made for an insight was for, hit or miss: the context's purpose, else
    ``insight``."""
    ctx = user_ctx or current_user_context()
    return (ctx.context_type if ctx else "") or "insight"
