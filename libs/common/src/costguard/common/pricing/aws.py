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
COST_AWS_SES_PER_1K_EMAILS              0.10          SES outbound, per 1,000 emails
COST_AWS_SQS_PER_MILLION                0.40          SQS standard queue, per million requests
COST_AWS_LAMBDA_GB_SECOND               0.0000166667  Lambda x86 duration, per GB-second
COST_AWS_LAMBDA_PER_MILLION_REQUESTS    0.20          Lambda invocations, per million
======================================  ============  ==========================================

How each cost event uses them is :mod:`.events` (and docs/cost-events.md). Storage is priced
by what is held (:mod:`costguard.common.storage`): each object from its PUT or COPY to its
DELETE or overwrite, at :attr:`AwsPrices.s3_storage_per_byte_second`. A GB-month is one GiB
(2**30 bytes, as AWS bills) held for 30 days (2,592,000 s). AWS divides by the hours of the
calendar month instead, so its rate per second is 30/31 of this one in a 31-day month (3.2%
lower) and 30/28 in a 28-day February (7.1% higher). Every storage class is priced as S3
Standard.

``COST_AWS_S3_STORAGE_DAYS`` (days of storage charged to each upload, 30) is no longer read.
Price sheets stored while it was carry it as ``s3_storage_days`` and keep their digest; it
prices nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from costguard.common.config import Env

GIB = 2**30
GB_MONTH_SECONDS = 30 * 86_400  # the month a GB-month price is taken over: 30 days
# 1 / 2,592,000 has no finite decimal expansion, so the per-byte-second rate is kept to 40
# places (23 significant digits at $0.023: a relative error below 1e-23) and
# every product after it is exact: SQL and Python multiply the very same numbers, and a
# day's storage costs add up to an object's lifetime cost to the last digit.
PER_BYTE_SECOND_QUANTUM = Decimal("1e-40")
# The one division: to 60 digits, then to the quantum (every later step is exact).
_QUOTIENT = Context(prec=60)

# Fields that price nothing any more, kept so that stored sheets naming them still load.
RETIRED = frozenset({"s3_storage_days"})
_ENV_DEFAULTS = {
    "s3_put_per_1k": ("COST_AWS_S3_PUT_PER_1K", "0.005"),
    "s3_get_per_1k": ("COST_AWS_S3_GET_PER_1K", "0.0004"),
    "s3_storage_gb_month": ("COST_AWS_S3_STORAGE_GB_MONTH", "0.023"),
    "ses_per_1k_emails": ("COST_AWS_SES_PER_1K_EMAILS", "0.10"),
    "sqs_per_million": ("COST_AWS_SQS_PER_MILLION", "0.40"),
    "lambda_gb_second": ("COST_AWS_LAMBDA_GB_SECOND", "0.0000166667"),
    "lambda_per_million_requests": ("COST_AWS_LAMBDA_PER_MILLION_REQUESTS", "0.20"),
}


@dataclass(frozen=True)
class AwsPrices:
    """AWS list prices in USD, in the units AWS quotes them (see the module docstring).

    ``s3_storage_days`` is retired: ``None``, except in a sheet stored before storage was
    priced by what is held, which keeps it (and so its digest) but prices nothing with it.
    """

    s3_put_per_1k: Decimal
    s3_get_per_1k: Decimal
    s3_storage_gb_month: Decimal
    ses_per_1k_emails: Decimal
    sqs_per_million: Decimal
    lambda_gb_second: Decimal
    lambda_per_million_requests: Decimal
    s3_storage_days: Decimal | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None and item.name in RETIRED:
                continue
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"AwsPrices.{item.name} must be a finite Decimal >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AwsPrices:
        env = Env(environ)
        return cls(**{name: env.decimal(*spec) for name, spec in _ENV_DEFAULTS.items()})

    @property
    def s3_storage_per_byte_second(self) -> Decimal:
        """What holding one byte for one second costs: the GB-month price / (2**30 x
        2,592,000), to :data:`PER_BYTE_SECOND_QUANTUM`."""
        with localcontext(_QUOTIENT):
            exact = self.s3_storage_gb_month / (GIB * GB_MONTH_SECONDS)
            return exact.quantize(PER_BYTE_SECOND_QUANTUM, rounding=ROUND_HALF_EVEN)
