"""What one cost event (a ``cost_events`` row) costs: the known vocabulary and its prices.

The vocabulary is the podcast app's (``trackCostEvent({eventType, service, quantity, unit,
metadata})``); docs/cost-events.md is its table for users, :func:`event_rates` the same
table in code and :data:`COST_EVENTS_SQL` its twin in SQL for the rollup, held to the same
digit by the tests. An event is priced by the rate of its ``(event_type, service)`` and must
carry that rate's unit. Per kind of rate:

- ``llm`` (``ai_api_call``/``gemini_text``/``tokens``): an LLM call at the sheet's
  genai-prices rate for ``metadata.model`` (provider ``google``), on ``metadata.input_tokens``
  (cached included), ``cached_input_tokens`` (default 0) and ``output_tokens`` (reasoning
  included), exactly as :func:`~costguard.common.pricing.llm.llm_call_cost`.
- ``tts`` (``gemini_tts``/``tokens``): input and output tokens at the sheet's overlay rates
  (:mod:`.overlay`); ``image`` (``gemini_image``/``images``): quantity x the model's price
  per image.
- ``sized_image`` (``openai_image``/``images``): quantity x the overlay's price of one image
  of ``metadata.model`` at ``metadata.quality`` and ``metadata.size`` (both non-empty
  strings); ``characters`` (``openai_tts``/``characters``) and ``audio_seconds``
  (``openai_transcription``/``seconds``): quantity x the overlay's price per character of
  input text, per second of input audio, of ``metadata.model``.
- ``upload`` (``s3_put``, ``s3_copy``): quantity x the PUT price. The object's storage is
  not part of the request's cost: :mod:`costguard.common.storage` prices it day by day for
  as long as the object is held. The size uploaded (:func:`stored_bytes`:
  ``metadata.size_bytes`` when it is a number, else ``metadata.file_size_mb`` x 2**20, MiB,
  what ``buffer.length / 1024 / 1024`` gives, else 0) is the day's ``storage_mb`` usage.
- ``sqs`` (``sqs_message``/``sqs``/``messages``): quantity is messages sent; SQS bills each
  64 KiB chunk of payload as a request and a batch of up to 10 messages as one, so the
  requests billed are ``max(base, ceil(body_bytes / 65536))`` where ``base`` is
  ``ceil(quantity / 10)`` when ``metadata.operation`` is ``SendMessageBatch`` and quantity
  otherwise (0 when quantity is 0; ``body_bytes`` from metadata, else 0).
- ``lambda`` (``lambda_invocation``/``lambda``/``requests``): quantity x the per-request
  price, plus ``duration_seconds x memory_mb / 1024`` GB-seconds (both from metadata, 0 when
  missing) at the per-GB-second price.
- ``per_unit``: quantity x the price (S3 GET, HEAD, LIST; SES per email sent; S3 DELETE at a
  known $0).

Anything else (an unknown event type or service, a unit that does not match, metadata an AI
price needs that is missing or malformed, a model with no price) is *unpriced*: cost 0 in
category ``"unpriced"``, with the reason, so the rollup can show it, never a silent $0.
Metadata numbers are JSON numbers (a string such as ``"12"`` is not read); a count must be a
whole number >= 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext
from functools import cache
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from costguard.common.money import EXACT
from costguard.common.pricing.aws import AwsPrices
from costguard.common.pricing.llm import ZERO, llm_call_cost
from costguard.common.pricing.overlay import OverlayKind, sized_image_key
from costguard.common.pricing.sheet import PriceSheet

CATEGORY_AI = "ai"
CATEGORY_AWS = "aws"
CATEGORY_UNPRICED = "unpriced"
GEMINI_PROVIDER = "google"  # genai-prices' provider id for the Gemini API
MIB = 2**20
# Exact reciprocals, so SQL multiplies instead of dividing (a numeric division rounds).
PER_KIB = Decimal("0.0009765625")  # 1 / 1024
PER_SQS_CHUNK = Decimal("0.0000152587890625")  # 1 / 65536: SQS bills 64 KiB per request
SQS_BATCH = "SendMessageBatch"

RateKind = Literal[
    "llm",
    "tts",
    "image",
    "sized_image",
    "characters",
    "audio_seconds",
    "upload",
    "sqs",
    "lambda",
    "per_unit",
]
_MODEL_KINDS = ("llm", "tts", "image", "sized_image", "characters", "audio_seconds")
_TOKEN_KINDS = ("llm", "tts")
_PER_UNIT_KINDS: tuple[OverlayKind, ...] = ("image", "sized_image", "characters", "audio_seconds")
_IMAGE_VARIANT = ("quality", "size")  # what a sized_image's price depends on, with the model


@dataclass(frozen=True)
class EventRate:
    """How one ``(event_type, service)`` is priced; see the module docstring per ``kind``."""

    event_type: str
    service: str
    unit: str
    kind: RateKind
    per_unit: Decimal = ZERO
    per_gb_second: Decimal = ZERO
    category: str = CATEGORY_AWS


class EventCost(NamedTuple):
    """One event's cost and category; unpriced ones say why (``reason``) and under which
    ``item`` the rollup lists them in ``cost_global_daily.unpriced_json``."""

    cost: Decimal
    category: str
    reason: str = ""
    item: str = ""

    @property
    def priced(self) -> bool:
        return self.category != CATEGORY_UNPRICED


EVENT_RATE_COLUMNS = (
    "event_type",
    "service",
    "unit",
    "kind",
    "per_unit",
    "per_gb_second",
    "category",
)
EventRateRow = tuple[str, str, str, str, Decimal, Decimal, str]


@cache
def event_rates(aws: AwsPrices) -> Mapping[tuple[str, str], EventRate]:
    """Every known ``(event_type, service)``: the vocabulary of docs/cost-events.md."""
    put, get = aws.s3_put_per_1k.scaleb(-3), aws.s3_get_per_1k.scaleb(-3)
    rates = [
        EventRate("ai_api_call", "gemini_text", "tokens", "llm", category=CATEGORY_AI),
        EventRate("ai_api_call", "gemini_tts", "tokens", "tts", category=CATEGORY_AI),
        EventRate("ai_api_call", "gemini_image", "images", "image", category=CATEGORY_AI),
        EventRate("ai_api_call", "openai_image", "images", "sized_image", category=CATEGORY_AI),
        EventRate("ai_api_call", "openai_tts", "characters", "characters", category=CATEGORY_AI),
        EventRate(
            "ai_api_call", "openai_transcription", "seconds", "audio_seconds", category=CATEGORY_AI
        ),
        EventRate("s3_operation", "s3_put", "requests", "upload", put),
        EventRate("s3_operation", "s3_copy", "requests", "upload", put),
        EventRate("s3_operation", "s3_list", "requests", "per_unit", put),
        EventRate("s3_operation", "s3_get", "requests", "per_unit", get),
        EventRate("s3_operation", "s3_head", "requests", "per_unit", get),
        EventRate("s3_operation", "s3_delete", "requests", "per_unit", ZERO),
        EventRate("ses_email", "ses", "emails", "per_unit", aws.ses_per_1k_emails.scaleb(-3)),
        EventRate("sqs_message", "sqs", "messages", "sqs", aws.sqs_per_million.scaleb(-6)),
        EventRate(
            "lambda_invocation",
            "lambda",
            "requests",
            "lambda",
            aws.lambda_per_million_requests.scaleb(-6),
            per_gb_second=aws.lambda_gb_second,
        ),
    ]
    return MappingProxyType({(rate.event_type, rate.service): rate for rate in rates})


def vocabulary() -> frozenset[tuple[str, str, str]]:
    """Every known ``(event_type, service, unit)``; the SDK keeps a copy (a test compares)."""
    return frozenset((r.event_type, r.service, r.unit) for r in _default_rates().values())


@cache
def _default_rates() -> Mapping[tuple[str, str], EventRate]:
    return event_rates(AwsPrices.from_env({}))


def event_rate_rows(sheet: PriceSheet) -> list[EventRateRow]:
    """One row per known ``(event_type, service)``, in :data:`EVENT_RATE_COLUMNS` order."""
    return [
        (
            r.event_type,
            r.service,
            r.unit,
            r.kind,
            r.per_unit,
            r.per_gb_second,
            r.category,
        )
        for r in event_rates(sheet.aws).values()
    ]


def quoted(name: str) -> str:
    """``'name'``, as the SQL writes it (``repr`` would switch quotes for a name with ')."""
    return f"'{name}'"


def cost_event_cost(
    sheet: PriceSheet,
    event_type: str,
    service: str,
    quantity: Decimal | int,
    unit: str,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> EventCost:
    """The exact USD cost of one cost event and its category (:data:`COST_EVENTS_SQL`)."""
    amount = Decimal(quantity)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"quantity must be a finite number >= 0, got {quantity!r}")
    meta = metadata or {}
    rates = event_rates(sheet.aws)
    rate = rates.get((event_type, service))
    item = f"{service}:{event_type}"
    if rate is None:
        if any(known == event_type for known, _ in rates):
            reason = f"unknown service {quoted(service)} for event type {quoted(event_type)}"
        else:
            reason = f"unknown event type {quoted(event_type)}"
        return EventCost(ZERO, CATEGORY_UNPRICED, reason, item)
    model = _model(meta) if rate.kind in _MODEL_KINDS else None
    if model is not None:
        item = f"{item}:{model}"
    reason = _unpriceable(rate, unit=unit, has_model=model is not None, meta=meta)
    cost = ZERO
    if not reason and rate.kind in _MODEL_KINDS:
        reason, cost = _model_cost(sheet, rate, model=model or "", amount=amount, meta=meta)
    elif not reason:
        cost = _aws_cost(rate, amount, meta)
    if reason:
        return EventCost(ZERO, CATEGORY_UNPRICED, reason, item)
    return EventCost(cost, rate.category)


def _unpriceable(rate: EventRate, *, unit: str, has_model: bool, meta: Mapping[str, Any]) -> str:
    """Why an event of a known type and service cannot be priced before its model's price
    is looked up; "" when nothing is wrong."""
    if unit != rate.unit:
        return f"unit {quoted(unit)} does not match {quoted(rate.unit)}"
    if rate.kind in _MODEL_KINDS and not has_model:
        return "metadata 'model' is missing or not a non-empty string"
    if rate.kind in _TOKEN_KINDS:
        for name in ("input_tokens", "output_tokens"):
            if _count(meta, name) is None:
                return f"metadata {quoted(name)} is missing or not a non-negative integer"
    if rate.kind == "sized_image":
        for name in _IMAGE_VARIANT:
            if _text(meta, name) is None:
                return f"metadata {quoted(name)} is missing or not a non-empty string"
    if rate.kind == "llm" and meta.get("cached_input_tokens") is not None:
        return _cached_tokens_problem(meta)
    return ""


def _cached_tokens_problem(meta: Mapping[str, Any]) -> str:
    cached = _count(meta, "cached_input_tokens")
    if cached is None:
        return "metadata 'cached_input_tokens' is not a non-negative integer"
    if cached > (_count(meta, "input_tokens") or 0):
        return "metadata 'cached_input_tokens' exceeds 'input_tokens'"
    return ""


def _model_cost(
    sheet: PriceSheet, rate: EventRate, *, model: str, amount: Decimal, meta: Mapping[str, Any]
) -> tuple[str, Decimal]:
    """``("", cost)`` of an AI event whose metadata checked out, or ``(reason, 0)`` when the
    sheet has no price for its model."""
    inp, out = _count(meta, "input_tokens") or 0, _count(meta, "output_tokens") or 0
    no_price = f"no price for model {quoted(model)}"
    if rate.kind == "llm":
        llm = sheet.llm.get((model, GEMINI_PROVIDER))
        if llm is None or not llm.priced:
            return no_price, ZERO
        return "", llm_call_cost(llm, inp, _count(meta, "cached_input_tokens") or 0, out)
    if rate.kind == "tts":
        overlay = sheet.overlay_rate("tts", model)
        if overlay is None:
            return no_price, ZERO
        with localcontext(EXACT):
            return "", inp * overlay.input_per_token + out * overlay.output_per_token
    kind = next(known for known in _PER_UNIT_KINDS if known == rate.kind)
    key = model
    if kind == "sized_image":
        quality, size = (_text(meta, name) or "" for name in _IMAGE_VARIANT)
        key = sized_image_key(model, quality, size)
        no_price = f"{no_price} at quality {quoted(quality)} and size {quoted(size)}"
    overlay = sheet.overlay_rate(kind, key)
    if overlay is None:
        return no_price, ZERO
    with localcontext(EXACT):
        return "", amount * overlay.per_unit


def _aws_cost(rate: EventRate, amount: Decimal, meta: Mapping[str, Any]) -> Decimal:
    with localcontext(EXACT):
        if rate.kind == "sqs":
            return sqs_requests(amount, meta) * rate.per_unit
        if rate.kind == "lambda":
            duration = metadata_number(meta, "duration_seconds")
            gb_seconds = duration * metadata_number(meta, "memory_mb") * PER_KIB
            return amount * rate.per_unit + gb_seconds * rate.per_gb_second
        return amount * rate.per_unit


def stored_bytes(meta: Mapping[str, Any]) -> Decimal:
    """The size of an uploaded object: ``size_bytes`` when it is a number, else
    ``file_size_mb`` MiB, else 0 (negative numbers count as 0). Its storage is priced by
    :mod:`costguard.common.storage`, which reads the size the same way."""
    if _number(meta, "size_bytes") is not None:
        return metadata_number(meta, "size_bytes")
    with localcontext(EXACT):
        return metadata_number(meta, "file_size_mb") * MIB


def sqs_requests(messages: Decimal, meta: Mapping[str, Any]) -> Decimal:
    """SQS requests billed for ``messages`` sent (see the module docstring)."""
    if messages <= 0:
        return ZERO
    with localcontext(EXACT):
        base = messages
        if meta.get("operation") == SQS_BATCH:
            base = (messages * Decimal("0.1")).to_integral_value(rounding=ROUND_CEILING)
        chunks = metadata_number(meta, "body_bytes") * PER_SQS_CHUNK
        return max(base, chunks.to_integral_value(rounding=ROUND_CEILING))


def _number(meta: Mapping[str, Any], key: str) -> Decimal | None:
    """A finite JSON number from the metadata, else ``None``."""
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = Decimal(str(value))  # str: the JSON text the SQL reads, not the binary float
    return number if number.is_finite() else None


def metadata_number(meta: Mapping[str, Any], key: str) -> Decimal:
    """A JSON number >= 0 from the metadata, else 0 (the SQL reads it the same way)."""
    number = _number(meta, key)
    return number if number is not None and number > 0 else ZERO


def _count(meta: Mapping[str, Any], key: str) -> int | None:
    """A whole JSON number >= 0 (``1200`` or ``1200.0``), else ``None``."""
    number = _number(meta, key)
    if number is None or number < 0 or number != number.to_integral_value():
        return None
    return int(number)


def _text(meta: Mapping[str, Any], key: str) -> str | None:
    """A non-empty JSON string from the metadata, else ``None``."""
    value = meta.get(key)
    return value if isinstance(value, str) and value != "" else None


def _model(meta: Mapping[str, Any]) -> str | None:
    return _text(meta, "model")


# The SQL twin of ``cost_event_cost``: every ``cost_events`` row created in [$1, $2) with
# its cost, category, reason and item, and the bytes it uploads (``stored_bytes``). It reads the
# rollup's temporary rate tables: ``rollup_event_rates`` (``event_rate_rows``),
# ``rollup_llm_rates`` (``llm_rate_rows``, built from the day's models, including those of
# ``ai_api_call``/``gemini_text`` events) and ``rollup_overlay_rates``
# (``overlay_rate_rows``; a ``sized_image`` rate's model is ``<model>/<quality>/<size>``,
# and ``per_image`` is the price per unit of quantity of each per-unit kind). ``n`` finds
# each event's rate and reads, once, the metadata that rate's kind needs (a cast sits inside
# a CASE, so a non-number is never cast); ``m`` checks counts and defaults; ``x`` finds the
# model's price and the reason. ``n`` is MATERIALIZED:
# Postgres would otherwise inline each of its expressions wherever it is used and read the
# JSON many times over (300,000 events took 4 s instead of 2 s on the 2-core dev machine;
# materializing ``m`` or ``x`` as well made it slower). 0.0009765625 is 1/1024,
# 0.0000152587890625 1/65536 and 1048576 2**20 (PER_KIB, PER_SQS_CHUNK, MIB).
COST_EVENTS_SQL = """
WITH n AS MATERIALIZED (
    SELECT e.event_id, e.user_id, e.tier, e.created_at, e.episode_id, e.podcast_id,
           e.event_type, e.service, e.unit, e.quantity,
           t.event_type IS NOT NULL AS known_type,
           r.event_type IS NOT NULL AS known, r.unit AS rate_unit, r.kind,
           r.category AS rate_category, r.per_unit, r.per_gb_second,
           CASE WHEN r.kind IN ('llm', 'tts', 'image', 'sized_image', 'characters',
                                'audio_seconds')
                     AND jsonb_typeof(e.metadata -> 'model') = 'string'
                     AND e.metadata ->> 'model' <> ''
                THEN e.metadata ->> 'model' END AS model,
           CASE WHEN r.kind = 'sized_image'
                     AND jsonb_typeof(e.metadata -> 'quality') = 'string'
                     AND e.metadata ->> 'quality' <> ''
                THEN e.metadata ->> 'quality' END AS quality,
           CASE WHEN r.kind = 'sized_image'
                     AND jsonb_typeof(e.metadata -> 'size') = 'string'
                     AND e.metadata ->> 'size' <> ''
                THEN e.metadata ->> 'size' END AS size,
           CASE WHEN r.kind IN ('llm', 'tts')
                     AND jsonb_typeof(e.metadata -> 'input_tokens') = 'number'
                THEN (e.metadata ->> 'input_tokens')::numeric END AS input_tokens,
           CASE WHEN r.kind IN ('llm', 'tts')
                     AND jsonb_typeof(e.metadata -> 'output_tokens') = 'number'
                THEN (e.metadata ->> 'output_tokens')::numeric END AS output_tokens,
           r.kind = 'llm'
               AND coalesce(jsonb_typeof(e.metadata -> 'cached_input_tokens'), 'null') = 'null'
               AS no_cached_input_tokens,
           CASE WHEN r.kind = 'llm'
                     AND jsonb_typeof(e.metadata -> 'cached_input_tokens') = 'number'
                THEN (e.metadata ->> 'cached_input_tokens')::numeric END AS cached_input_tokens,
           CASE WHEN r.kind <> 'upload' THEN 0
                WHEN jsonb_typeof(e.metadata -> 'size_bytes') = 'number'
                THEN GREATEST((e.metadata ->> 'size_bytes')::numeric, 0)
                WHEN jsonb_typeof(e.metadata -> 'file_size_mb') = 'number'
                THEN GREATEST((e.metadata ->> 'file_size_mb')::numeric, 0) * 1048576
                ELSE 0 END AS stored_bytes,
           r.kind = 'sqs' AND coalesce(e.metadata ->> 'operation' = 'SendMessageBatch', false)
               AS batch,
           CASE WHEN r.kind = 'sqs' AND jsonb_typeof(e.metadata -> 'body_bytes') = 'number'
                THEN GREATEST((e.metadata ->> 'body_bytes')::numeric, 0) ELSE 0 END
               AS body_bytes,
           CASE WHEN r.kind = 'lambda'
                     AND jsonb_typeof(e.metadata -> 'duration_seconds') = 'number'
                THEN GREATEST((e.metadata ->> 'duration_seconds')::numeric, 0) ELSE 0 END
               AS duration_seconds,
           CASE WHEN r.kind = 'lambda' AND jsonb_typeof(e.metadata -> 'memory_mb') = 'number'
                THEN GREATEST((e.metadata ->> 'memory_mb')::numeric, 0) ELSE 0 END
               AS memory_mb
    FROM cost_events e
    LEFT JOIN rollup_event_rates r ON r.event_type = e.event_type AND r.service = e.service
    LEFT JOIN (SELECT DISTINCT event_type FROM rollup_event_rates) t
        ON t.event_type = e.event_type
    WHERE e.created_at >= $1 AND e.created_at < $2
),
m AS (
    SELECT event_id, user_id, tier, created_at, episode_id, podcast_id, event_type, service,
           unit, quantity, known_type, known, rate_unit, kind, rate_category, per_unit,
           per_gb_second, model, quality, size, stored_bytes, batch, body_bytes,
           duration_seconds, memory_mb,
           CASE WHEN input_tokens >= 0 AND input_tokens = trunc(input_tokens)
                THEN input_tokens END AS input_tokens,
           CASE WHEN output_tokens >= 0 AND output_tokens = trunc(output_tokens)
                THEN output_tokens END AS output_tokens,
           CASE WHEN no_cached_input_tokens THEN 0
                WHEN cached_input_tokens >= 0 AND cached_input_tokens = trunc(cached_input_tokens)
                THEN cached_input_tokens END AS cached_input_tokens
    FROM n
),
x AS (
    SELECT m.*, l.input_per_token, l.cached_input_per_token, l.output_per_token,
           l.per_request, o.input_per_token AS overlay_input,
           o.output_per_token AS overlay_output, o.per_image,
           CASE
               WHEN NOT m.known_type THEN 'unknown event type ''' || m.event_type || ''''
               WHEN NOT m.known THEN 'unknown service ''' || m.service
                   || ''' for event type ''' || m.event_type || ''''
               WHEN m.unit <> m.rate_unit
                   THEN 'unit ''' || m.unit || ''' does not match ''' || m.rate_unit || ''''
               WHEN m.kind IN ('llm', 'tts', 'image', 'sized_image', 'characters',
                               'audio_seconds') AND m.model IS NULL
                   THEN 'metadata ''model'' is missing or not a non-empty string'
               WHEN m.kind IN ('llm', 'tts') AND m.input_tokens IS NULL
                   THEN 'metadata ''input_tokens'' is missing or not a non-negative integer'
               WHEN m.kind IN ('llm', 'tts') AND m.output_tokens IS NULL
                   THEN 'metadata ''output_tokens'' is missing or not a non-negative integer'
               WHEN m.kind = 'sized_image' AND m.quality IS NULL
                   THEN 'metadata ''quality'' is missing or not a non-empty string'
               WHEN m.kind = 'sized_image' AND m.size IS NULL
                   THEN 'metadata ''size'' is missing or not a non-empty string'
               WHEN m.kind = 'llm' AND m.cached_input_tokens IS NULL
                   THEN 'metadata ''cached_input_tokens'' is not a non-negative integer'
               WHEN m.kind = 'llm' AND m.cached_input_tokens > m.input_tokens
                   THEN 'metadata ''cached_input_tokens'' exceeds ''input_tokens'''
               WHEN m.kind = 'llm' AND l.model IS NULL
                   THEN 'no price for model ''' || m.model || ''''
               WHEN m.kind = 'sized_image' AND o.model IS NULL
                   THEN 'no price for model ''' || m.model || ''' at quality ''' || m.quality
                       || ''' and size ''' || m.size || ''''
               WHEN m.kind IN ('tts', 'image', 'characters', 'audio_seconds') AND o.model IS NULL
                   THEN 'no price for model ''' || m.model || ''''
           END AS reason
    FROM m
    LEFT JOIN rollup_llm_rates l
        ON m.kind = 'llm' AND l.priced AND l.model = m.model AND l.provider = 'google'
        AND m.input_tokens
            BETWEEN l.min_input_tokens AND coalesce(l.max_input_tokens, m.input_tokens)
    LEFT JOIN rollup_overlay_rates o ON o.kind = m.kind
        AND o.model = CASE WHEN m.kind = 'sized_image'
                           THEN m.model || '/' || m.quality || '/' || m.size
                           ELSE m.model END
)
SELECT event_id, user_id, tier, created_at, episode_id, podcast_id, event_type, service, unit,
       quantity,
       CASE WHEN reason IS NULL THEN rate_category ELSE 'unpriced' END AS category,
       CASE WHEN reason IS NOT NULL THEN 0
       ELSE CASE kind
           WHEN 'llm' THEN (input_tokens - cached_input_tokens) * input_per_token
               + cached_input_tokens * cached_input_per_token
               + output_tokens * output_per_token + per_request
           WHEN 'tts' THEN input_tokens * overlay_input + output_tokens * overlay_output
           WHEN 'image' THEN quantity * per_image
           WHEN 'sized_image' THEN quantity * per_image
           WHEN 'characters' THEN quantity * per_image
           WHEN 'audio_seconds' THEN quantity * per_image
           WHEN 'sqs' THEN (CASE WHEN quantity > 0 THEN GREATEST(
                   CASE WHEN batch THEN CEIL(quantity * 0.1) ELSE quantity END,
                   CEIL(body_bytes * 0.0000152587890625)) ELSE 0 END) * per_unit
           WHEN 'lambda' THEN quantity * per_unit
               + duration_seconds * memory_mb * 0.0009765625 * per_gb_second
           ELSE quantity * per_unit
       END END AS cost,
       reason,
       CASE WHEN reason IS NULL THEN NULL
            WHEN model IS NOT NULL THEN service || ':' || event_type || ':' || model
            ELSE service || ':' || event_type END AS item,
       CASE WHEN reason IS NULL AND kind = 'upload' THEN stored_bytes ELSE 0 END
           AS stored_bytes
FROM x
"""
