"""What a check's estimate costs: the price its events will be stored at.

A named model is priced at the day's price sheet (the one telemetry prices the job's LLM
events with: its input, cached input and output rates, long-prompt bands included); a
model the sheet lacks is added to it first, as telemetry would add it. With no model
named, tokens are priced at the seed constants (``COST_LLM_INPUT_TOKEN`` and
``COST_LLM_OUTPUT_TOKEN``). CPU ms are priced by the seed formula, as jobs are. If
Postgres cannot be read, the estimate falls back to the seed constants (and says so in
the log) rather than failing the check.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

import asyncpg

from costguard.common.day_sheets import DaySheets
from costguard.common.pricing import SeedPrices, llm_call_cost

log = logging.getLogger(__name__)

# A reprice elsewhere reaches the throttle's estimates within this time.
SHEET_MAX_AGE_S = 5.0


class Estimator:
    def __init__(self, pool: asyncpg.Pool, sheets: DaySheets, seed: SeedPrices) -> None:
        self._pool = pool
        self._sheets = sheets
        self._seed = seed

    async def cost(
        self,
        day: date,
        *,
        cpu_ms: int,
        model: str,
        provider: str,
        input_tokens: int,
        cached_input_tokens: int,
        output_tokens: int,
    ) -> Decimal:
        """The exact USD cost of the estimate, as it will be priced when it is stored."""
        seed = self._seed
        if model:
            try:
                day_sheet = await self._sheets.current(
                    self._pool, day, {(model, provider)}, max_age_s=SHEET_MAX_AGE_S
                )
            except (OSError, asyncpg.PostgresError):
                log.warning("price sheet unavailable: estimating at the seed constants")
            else:
                sheet = day_sheet.sheet
                rate = sheet.llm_rate(model, provider)
                llm = llm_call_cost(rate, input_tokens, cached_input_tokens, output_tokens)
                return sheet.seed.job_cost(cpu_ms, 0, 0) + llm
        return seed.job_cost(cpu_ms, 0, 0) + seed.llm_cost(input_tokens, output_tokens)
