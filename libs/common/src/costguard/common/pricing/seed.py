"""The seed's four price constants, read once from the environment.

They price jobs, feed the live counters' estimated cost, and price any LLM model the price
library does not know (flagged as unpriced, never $0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from costguard.common.config import Env

NANO = Decimal("0.000000001")


@dataclass(frozen=True)
class SeedPrices:
    cpu_ms: Decimal
    db_row_1k: Decimal
    llm_input_token: Decimal
    llm_output_token: Decimal

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SeedPrices:
        env = Env(environ)
        return cls(
            cpu_ms=env.decimal("COST_CPU_MS", "0.00000002"),
            db_row_1k=env.decimal("COST_DB_ROW_1K", "0.0005"),
            llm_input_token=env.decimal("COST_LLM_INPUT_TOKEN", "0.00000015"),
            llm_output_token=env.decimal("COST_LLM_OUTPUT_TOKEN", "0.0000006"),
        )

    def job_cost(self, cpu_ms: int, rows_read: int, rows_written: int) -> Decimal:
        """The seed formula: cpu_ms*COST_CPU_MS + (rows_read+rows_written)/1000*COST_DB_ROW_1K."""
        return cpu_ms * self.cpu_ms + Decimal(rows_read + rows_written) / 1000 * self.db_row_1k

    def llm_cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return input_tokens * self.llm_input_token + output_tokens * self.llm_output_token


def to_nano_usd(amount: Decimal) -> int:
    """Whole nano-dollars, rounded down: the unit of the live counters (exact integers)."""
    return int((amount / NANO).to_integral_value(rounding=ROUND_FLOOR))
