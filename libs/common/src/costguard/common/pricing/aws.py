"""AWS list prices, and what one cost event (``cost_events`` row) costs at them.

Defaults are the us-east-1 (N. Virginia) on-demand list prices published on
https://aws.amazon.com/s3/pricing/, /ses/pricing/, /sqs/pricing/ and /lambda/pricing/
(as checked in 2025; these figures have been stable for years). Free tiers are not applied:
they are account-wide monthly allowances, not the cost of one operation. Each price can be
overridden from the environment (a malformed value stops start-up naming the variable):

======================================  ============  ==========================================
variable                                default       meaning
======================================  ============  ==========================================
COST_AWS_S3_PUT_PER_1K                  0.005         S3 Standard PUT/COPY/POST/LIST, per 1,000
COST_AWS_S3_GET_PER_1K                  0.0004        S3 Standard GET/HEAD, per 1,000
COST_AWS_S3_STORAGE_GB_MONTH            0.023         S3 Standard storage, first 50 TB, GB-month
COST_AWS_S3_STORAGE_DAYS                30            days of storage charged to each upload
COST_AWS_SES_PER_1K_EMAILS              0.10          SES outbound, per 1,000 emails
COST_AWS_SQS_PER_MILLION                0.40          SQS standard queue, per million requests
COST_AWS_LAMBDA_GB_SECOND               0.0000166667  Lambda x86 duration, per GB-second
COST_AWS_LAMBDA_PER_MILLION_REQUESTS    0.20          Lambda invocations, per million
======================================  ============  ==========================================

Every event is priced as ``units * per_unit + size_bytes * per_byte`` by its rate
(:func:`aws_rates`), where the rate is found by the event's ``event_type`` and must agree on
``service`` and ``unit``; anything else is *unpriced*: cost 0 in category ``"unpriced"``, so
the rollup can count and show it, never a silent $0. Per event type:

- ``s3.put_object`` / ``s3.copy_object`` (1 ``request``): the PUT request price, plus
  storage. The SDK sees uploads, not how long objects live, so an upload is charged
  ``COST_AWS_S3_STORAGE_DAYS`` days of storage on the day it is made:
  ``size_bytes / 2**30 * storage_gb_month * days / 30`` (AWS bills storage in GB of 2**30
  bytes; a month is taken as 30 days). The default, 30 days, charges one month, the period
  the price is quoted for; set your retention instead. An unknown size (``size_bytes``
  missing, or 0 with ``size_known=false``) adds no storage. Deletes refund nothing.
  Every storage class is priced as S3 Standard.
- ``s3.list_objects``, ``s3.list_objects_v2`` (1 ``request``): the PUT-tier price.
- ``s3.get_object``, ``s3.head_object`` (1 ``request``): the GET price. Data transfer is not
  priced (free inside a region; internet egress is an account-level charge).
- ``s3.delete_object``, ``s3.delete_objects``: free (S3 does not charge DELETE requests); a
  known $0, category ``"aws"``.
- ``ses.send_email|send_raw_email|send_templated_email|send_bulk_templated_email|
  send_bulk_email`` (``email``, quantity = recipients accepted): per 1,000 emails.
  Attachment data ($0.12/GB) is not priced.
- ``sqs.send_message|send_message_batch`` (``message``): SQS bills requests, each 64 KiB
  chunk of payload as one request, and a batch of up to 10 messages as one request. So an
  event costs ``max(1, ceil(body_bytes / 65536))`` requests whatever its message count
  (``body_bytes`` from metadata: the accepted messages' bodies; attributes not counted).
  Only sends are recorded: the consumer's receive and delete requests are not priced.
- ``lambda.invoke`` (``gb_second``, quantity = GB-seconds): per GB-second (x86; set the Arm
  price, 0.0000133334, if your functions run on Graviton).
- ``lambda.request`` (1 ``request``): per million requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, localcontext
from functools import cache
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from costguard.common.config import Env
from costguard.common.pricing.llm import EXACT, ZERO

CATEGORY_AWS = "aws"
CATEGORY_UNPRICED = "unpriced"
GIB = 2**30
SQS_CHUNK_BYTES = 65_536
# Per-byte rates are kept to 1e-24 USD (1e-15 USD per GiB), far below the 1e-8 the rollup
# stores, so that SQL and Python multiply the very same numbers.
PER_BYTE_QUANTUM = Decimal("1e-24")

UnitsFrom = Literal["quantity", "sqs_64k_chunks"]

_ENV_DEFAULTS = {
    "s3_put_per_1k": ("COST_AWS_S3_PUT_PER_1K", "0.005"),
    "s3_get_per_1k": ("COST_AWS_S3_GET_PER_1K", "0.0004"),
    "s3_storage_gb_month": ("COST_AWS_S3_STORAGE_GB_MONTH", "0.023"),
    "s3_storage_days": ("COST_AWS_S3_STORAGE_DAYS", "30"),
    "ses_per_1k_emails": ("COST_AWS_SES_PER_1K_EMAILS", "0.10"),
    "sqs_per_million": ("COST_AWS_SQS_PER_MILLION", "0.40"),
    "lambda_gb_second": ("COST_AWS_LAMBDA_GB_SECOND", "0.0000166667"),
    "lambda_per_million_requests": ("COST_AWS_LAMBDA_PER_MILLION_REQUESTS", "0.20"),
}


@dataclass(frozen=True)
class AwsPrices:
    """AWS list prices in USD, in the units AWS quotes them (see the module docstring)."""

    s3_put_per_1k: Decimal
    s3_get_per_1k: Decimal
    s3_storage_gb_month: Decimal
    s3_storage_days: Decimal
    ses_per_1k_emails: Decimal
    sqs_per_million: Decimal
    lambda_gb_second: Decimal
    lambda_per_million_requests: Decimal

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"AwsPrices.{item.name} must be a finite Decimal >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AwsPrices:
        env = Env(environ)
        return cls(**{name: env.decimal(*spec) for name, spec in _ENV_DEFAULTS.items()})

    @property
    def s3_storage_per_byte(self) -> Decimal:
        """What an upload's storage costs per byte, for ``s3_storage_days`` days."""
        with localcontext(EXACT):
            exact = self.s3_storage_gb_month * self.s3_storage_days / 30 / GIB
            return exact.quantize(PER_BYTE_QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class AwsRate:
    """How one event type is priced: ``units * per_unit + size_bytes * per_byte``."""

    event_type: str
    service: str
    unit: str
    units_from: UnitsFrom
    per_unit: Decimal
    per_byte: Decimal = ZERO
    category: str = CATEGORY_AWS

    def cost(self, quantity: Decimal, metadata: Mapping[str, Any]) -> Decimal:
        """``units * per_unit + size_bytes * per_byte`` (:data:`AWS_EVENT_COST_SQL`)."""
        if self.units_from == "sqs_64k_chunks":
            chunks = metadata_number(metadata, "body_bytes") / SQS_CHUNK_BYTES
            ceiling = chunks.to_integral_value(rounding=ROUND_CEILING)
            units = max(Decimal(1), ceiling) if quantity > 0 else ZERO
        else:
            units = quantity
        with localcontext(EXACT):
            stored = metadata_number(metadata, "size_bytes") * self.per_byte
            return units * self.per_unit + stored


class EventCost(NamedTuple):
    cost: Decimal
    category: str

    @property
    def priced(self) -> bool:
        return self.category != CATEGORY_UNPRICED


_SES_SENDS = (
    "send_email",
    "send_raw_email",
    "send_templated_email",
    "send_bulk_templated_email",
    "send_bulk_email",
)


@cache
def aws_rates(prices: AwsPrices) -> Mapping[str, AwsRate]:
    """Every priced AWS event type, by ``event_type``."""
    put, get = prices.s3_put_per_1k.scaleb(-3), prices.s3_get_per_1k.scaleb(-3)
    storage = prices.s3_storage_per_byte
    rates = [
        AwsRate("s3.put_object", "s3", "request", "quantity", put, storage),
        AwsRate("s3.copy_object", "s3", "request", "quantity", put, storage),
        AwsRate("s3.list_objects", "s3", "request", "quantity", put),
        AwsRate("s3.list_objects_v2", "s3", "request", "quantity", put),
        AwsRate("s3.get_object", "s3", "request", "quantity", get),
        AwsRate("s3.head_object", "s3", "request", "quantity", get),
        AwsRate("s3.delete_object", "s3", "request", "quantity", ZERO),
        AwsRate("s3.delete_objects", "s3", "request", "quantity", ZERO),
        *(
            AwsRate(f"ses.{send}", "ses", "email", "quantity", prices.ses_per_1k_emails.scaleb(-3))
            for send in _SES_SENDS
        ),
        *(
            AwsRate(
                f"sqs.{send}", "sqs", "message", "sqs_64k_chunks", prices.sqs_per_million.scaleb(-6)
            )
            for send in ("send_message", "send_message_batch")
        ),
        AwsRate("lambda.invoke", "lambda", "gb_second", "quantity", prices.lambda_gb_second),
        AwsRate(
            "lambda.request",
            "lambda",
            "request",
            "quantity",
            prices.lambda_per_million_requests.scaleb(-6),
        ),
    ]
    return MappingProxyType({rate.event_type: rate for rate in rates})


def cost_event_cost(
    aws: AwsPrices,
    service: str,
    event_type: str,
    quantity: Decimal | int,
    unit: str,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> EventCost:
    """The exact USD cost of one cost event and its category, ``"unpriced"`` (cost 0) when
    no rate matches its event type, service and unit."""
    amount = Decimal(quantity)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"quantity must be a finite number >= 0, got {quantity!r}")
    rate = aws_rates(aws).get(event_type)
    if rate is None or (rate.service, rate.unit) != (service, unit):
        return EventCost(ZERO, CATEGORY_UNPRICED)
    return EventCost(rate.cost(amount, metadata or {}), rate.category)


def metadata_number(metadata: Mapping[str, Any], key: str) -> Decimal:
    """A JSON number >= 0 from the metadata, else 0 (the SQL reads it the same way)."""
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return ZERO
    number = Decimal(str(value))  # str: the JSON text the SQL reads, not the binary float
    return number if number.is_finite() and number > 0 else ZERO


# The SQL twin of ``AwsRate.cost`` for the rollup: ``e`` is a ``cost_events`` row and
# ``r`` a row of the rates loaded from ``aws_rate_rows`` (LEFT JOINed on event_type, service
# and unit; no match means unpriced).
AWS_EVENT_COST_SQL = """
(CASE r.units_from
     WHEN 'sqs_64k_chunks' THEN CASE WHEN e.quantity > 0 THEN GREATEST(1, CEIL(
         CASE WHEN jsonb_typeof(e.metadata -> 'body_bytes') = 'number'
              THEN GREATEST((e.metadata ->> 'body_bytes')::numeric, 0) ELSE 0 END
         / 65536)) ELSE 0 END
     ELSE e.quantity
 END * r.per_unit
 + CASE WHEN jsonb_typeof(e.metadata -> 'size_bytes') = 'number'
        THEN GREATEST((e.metadata ->> 'size_bytes')::numeric, 0) ELSE 0 END * r.per_byte)
"""
