"""What a check's estimate costs: the price its events will be stored at.

A named model is priced at the day's price sheet (the one telemetry prices the job's LLM
events with: its input, cached input and output rates, long-prompt bands included); a
model the sheet lacks is added to it first, as telemetry would add it. With no model
named, tokens are priced at the seed constants (``COST_LLM_INPUT_TOKEN`` and
``COST_LLM_OUTPUT_TOKEN``). CPU ms are priced by the seed formula, as jobs are. If
Postgres cannot be read, the estimate falls back to the seed constants (and says so in
the log) rather than failing the check.

Checks ask for the same few estimates over and over, so each one's price in nano-dollars
is remembered per price sheet: a stored sheet never changes (a reprice stores a new one,
under a new id), so the same sheet prices the same estimate the same, and the remembered
figure is exactly the one worked out again.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from typing import NamedTuple

import asyncpg

from costguard.common.day_sheets import DaySheet, DaySheets
from costguard.common.pricing import PriceSheet, SeedPrices, llm_call_cost, to_nano_usd

log = logging.getLogger(__name__)

# A reprice elsewhere reaches the throttle's estimates within this time.
SHEET_MAX_AGE_S = 5.0
# Estimates remembered, at most; past it the memory starts again.
PRICED_ESTIMATES = 4096

_SEED = -1  # the sheet id of estimates priced at the seed constants


class _Estimate(NamedTuple):
    """What an estimate's price depends on: the key it is remembered by."""

    sheet_id: int
    model: str
    provider: str
    cpu_ms: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int


class Estimator:
    def __init__(self, pool: asyncpg.Pool, sheets: DaySheets, seed: SeedPrices) -> None:
        self._pool = pool
        self._sheets = sheets
        self._seed = seed
        self._priced: dict[_Estimate, int] = {}

    async def _sheet(self, day: date, model: str, provider: str) -> DaySheet | None:
        """The day's sheet pricing the model: None for the seed constants (no model named,
        or Postgres unreadable, which is logged)."""
        if not model:
            return None
        try:
            found = await self._sheets.current(
                self._pool, day, {(model, provider)}, max_age_s=SHEET_MAX_AGE_S
            )
        except (OSError, asyncpg.PostgresError):
            log.warning("price sheet unavailable: estimating at the seed constants")
            return None
        return found

    def _price(self, job: _Estimate, sheet: PriceSheet | None) -> Decimal:
        if sheet is None:
            seed = self._seed
            return seed.job_cost(job.cpu_ms, 0, 0) + seed.llm_cost(
                job.input_tokens, job.output_tokens
            )
        rate = sheet.llm_rate(job.model, job.provider)
        llm = llm_call_cost(rate, job.input_tokens, job.cached_input_tokens, job.output_tokens)
        return sheet.seed.job_cost(job.cpu_ms, 0, 0) + llm

    async def nano_usd(
        self,
        day: date,
        *,
        cpu_ms: int,
        model: str,
        provider: str,
        input_tokens: int,
        cached_input_tokens: int,
        output_tokens: int,
    ) -> int:
        """The exact USD cost of the estimate, as it will be priced when it is stored, in
        whole nano-dollars (rounded down: the live counters' unit)."""
        found = await self._sheet(day, model, provider)
        sheet = None if found is None else found.sheet
        if found is None:  # the seed constants know no model and no cache rate
            job = _Estimate(_SEED, "", "", cpu_ms, input_tokens, 0, output_tokens)
        else:
            job = _Estimate(
                found.sheet_id, model, provider, cpu_ms, input_tokens, cached_input_tokens,
                output_tokens,
            )  # fmt: skip
        nano = self._priced.get(job)
        if nano is None:
            nano = to_nano_usd(self._price(job, sheet))
            if len(self._priced) >= PRICED_ESTIMATES:
                self._priced.clear()
            self._priced[job] = nano
        return nano
