"""AWS list prices, overridable from the environment.

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

How each cost event uses them is :mod:`.events` (and docs/cost-events.md). Storage: the SDK
sees uploads, not how long objects live, so an upload is charged ``COST_AWS_S3_STORAGE_DAYS``
days of storage on the day it is made, ``bytes / 2**30 * storage_gb_month * days / 30`` (AWS
bills storage in GB of 2**30 bytes; a month is taken as 30 days). The default, 30 days,
charges one month, the period the price is quoted for; set your retention instead. Every
storage class is priced as S3 Standard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from costguard.common.config import Env
from costguard.common.pricing.llm import EXACT

GIB = 2**30
GB_MONTH_SECONDS = 30 * 86_400  # the month a GB-month price is taken over: 30 days
# 1 / 2,592,000 has no finite decimal expansion, so the per-byte-second rate is kept to 40
# places (23 significant digits at $0.023: a relative error below 1e-23) and
# every product after it is exact: SQL and Python multiply the very same numbers, and a
# day's storage costs add up to an object's lifetime cost to the last digit.
PER_BYTE_SECOND_QUANTUM = Decimal("1e-40")
# Per-byte rates are kept to 1e-24 USD (1e-15 USD per GiB), far below the 1e-8 the rollup
# stores, so that SQL and Python multiply the very same numbers.
PER_BYTE_QUANTUM = Decimal("1e-24")

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

    @property
    def s3_storage_per_byte_second(self) -> Decimal:
        """What holding one byte for one second costs: the GB-month price / (2**30 x
        2,592,000), to :data:`PER_BYTE_SECOND_QUANTUM`."""
        with localcontext(EXACT):
            exact = self.s3_storage_gb_month / (GIB * GB_MONTH_SECONDS)
            return exact.quantize(PER_BYTE_SECOND_QUANTUM, rounding=ROUND_HALF_EVEN)
