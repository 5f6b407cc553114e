"""Threshold alerts: one per cap, scope, threshold and day, recorded for the gateway.

The unique constraint on ``budget_alerts`` makes "once" hold across replicas and
restarts; an in-process set spares Postgres the repeats. Recording happens off the
decision's path, in the background.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Crossing:
    day: date
    scope: str
    metric: str
    threshold: Decimal
    used: Decimal
    cap: Decimal


class AlertRecorder:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._seen: set[tuple[date, str, str, Decimal]] = set()
        self._pending: set[asyncio.Task[None]] = set()

    def recorded(self, day: date, scope: str, metric: str, threshold: Decimal) -> bool:
        """Whether this crossing is already recorded or being recorded: a check crossing it
        again need not describe it."""
        return (day, scope, metric, threshold) in self._seen

    def observe(self, crossings: list[Crossing]) -> None:
        for crossing in crossings:
            key = (crossing.day, crossing.scope, crossing.metric, crossing.threshold)
            if key in self._seen:
                continue
            self._seen.add(key)
            task = asyncio.get_running_loop().create_task(self._record(crossing))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _record(self, crossing: Crossing) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO budget_alerts (day, apply_scope, metric, threshold, used, cap) "
                "VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT ON CONSTRAINT budget_alerts_once DO NOTHING",
                crossing.day,
                crossing.scope,
                crossing.metric,
                crossing.threshold,
                crossing.used,
                crossing.cap,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            # Not recorded: let a later check try again.
            self._seen.discard((crossing.day, crossing.scope, crossing.metric, crossing.threshold))
            log.warning("budget alert not recorded", exc_info=True)

    async def drain(self) -> None:
        """Wait for alerts being recorded (tests; shutdown)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
