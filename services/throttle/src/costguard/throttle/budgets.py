"""Budgets from ``cost_budgets``, cached in memory and reloaded on every change.

A trigger on ``cost_budgets`` sends ``NOTIFY costguard_budgets`` on every insert, update
and delete; the book LISTENs on a connection of its own and reloads the (small) table,
so a cap changed through the gateway or by hand in SQL applies within a second, without
a restart. A periodic reload covers notifications missed while that connection was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

import asyncpg

from costguard.common.pricing import to_nano_usd

log = logging.getLogger(__name__)

CHANNEL = "costguard_budgets"
# Cap metrics in the order the reserve script uses: (name, usage field, reserved field).
METRICS = (
    ("jobs", "jobs", "r_jobs"),
    ("cpu_ms", "cpu_ms", "r_cpu_ms"),
    ("llm_input_tokens", "tokens_in", "r_tokens_in"),
    ("llm_output_tokens", "tokens_out", "r_tokens_out"),
    ("cost_usd", "cost_nusd", "r_cost_nusd"),
)


@dataclass(frozen=True)
class Budget:
    scope: str
    caps: tuple[
        int | None, int | None, int | None, int | None, int | None
    ]  # METRICS order; cost in nano-USD
    thresholds: tuple[Decimal, ...]

    # Worked out once per budget (a budget is reloaded as a new object), not on each check.
    @cached_property
    def script_caps(self) -> tuple[int, ...]:
        """The caps as the reserve script takes them: -1 for none."""
        return tuple(-1 if cap is None else cap for cap in self.caps)

    @cached_property
    def capped(self) -> tuple[tuple[int, str, int], ...]:
        """(index into METRICS, metric name, cap) of each metric with a cap."""
        return tuple((m, METRICS[m][0], cap) for m, cap in enumerate(self.caps) if cap is not None)

    @cached_property
    def alert_levels(self) -> tuple[tuple[int, str, int, Decimal, int], ...]:
        """(index into METRICS, metric name, cap, threshold, least usage that crosses it) for
        each threshold of each nonzero cap: usage is a whole number, so ``usage >= threshold
        * cap`` exactly when ``usage >= ceil(threshold * cap)``."""
        return tuple(
            (m, METRICS[m][0], cap, threshold, math.ceil(threshold * cap))
            for m, cap in enumerate(self.caps)
            if cap
            for threshold in self.thresholds
        )


NO_BUDGET_CAPS = (-1, -1, -1, -1, -1)


def _budget(row: asyncpg.Record) -> Budget:
    cost = row["daily_cost_usd_cap"]
    return Budget(
        scope=row["apply_scope"],
        caps=(
            row["daily_jobs_cap"],
            row["daily_cpu_ms_cap"],
            row["llm_input_tokens_cap"],
            row["llm_output_tokens_cap"],
            to_nano_usd(cost) if cost is not None else None,
        ),
        thresholds=tuple(row["alert_thresholds"]),
    )


# The seed's cap columns, by their place in Budget.caps.
_CAP_INDEX = {
    "daily_jobs_cap": 0,
    "daily_cpu_ms_cap": 1,
    "llm_input_tokens_cap": 2,
    "llm_output_tokens_cap": 3,
}

LISTEN_WAIT_S = 5.0  # how long start() waits for the listener to be listening


class BudgetBook:
    def __init__(self, pool: asyncpg.Pool, dsn: str, *, reload_s: float) -> None:
        self._pool = pool
        self._dsn = dsn
        self._reload_s = reload_s
        self._budgets: dict[str, Budget] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._due = asyncio.Event()
        self._stopping = False
        self._listening = asyncio.Event()

    def get(self, scope: str) -> Budget | None:
        return self._budgets.get(scope)

    async def reload(self) -> None:
        rows = await self._pool.fetch(
            # The view reads "no cap" (stored as the largest bigint) as NULL.
            "SELECT apply_scope, daily_cpu_ms_cap, daily_jobs_cap, llm_input_tokens_cap, "
            "llm_output_tokens_cap, daily_cost_usd_cap, alert_thresholds "
            "FROM cost_budget_caps WHERE enabled"
        )
        budgets = {row["apply_scope"]: _budget(row) for row in rows}
        async with self._changed:
            self._budgets = budgets
            self._changed.notify_all()

    async def wait_for_budget(self, scope: str, caps: Mapping[str, int | None]) -> None:
        """Wait until ``scope``'s budget holds ``caps`` (``daily_cpu_ms_cap`` ...: a count,
        None for no cap), as a test or tool that just wrote them needs.

        Waiting for the content, not for a number of reloads: a reload already under way
        when the write commits read the table before it, and counts without holding it.
        """
        wanted = {_CAP_INDEX[name]: value for name, value in caps.items()}

        def holds() -> bool:
            budget = self._budgets.get(scope)
            return budget is not None and all(budget.caps[i] == v for i, v in wanted.items())

        async with self._changed:
            await self._changed.wait_for(holds)

    def _notified(self, *args: object) -> None:
        self._due.set()

    async def _listen_forever(self) -> None:
        while not self._stopping:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(CHANNEL, self._notified)
                await self.reload()  # anything changed while we were not listening
                self._listening.set()
                while not conn.is_closed() and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._reload_s):
                            await self._due.wait()
                    self._due.clear()
                    if not self._stopping:
                        await self.reload()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("budget listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)  # Postgres is away: retry at a gentle pace
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.get_running_loop().create_task(self._listen_forever())
        # Return once changes are heard, so that a budget written after start() is seen by
        # a NOTIFY-driven reload and never only by the listener's first one (which could
        # have read the table before the write). If LISTEN is slow to connect, go on: the
        # listener keeps trying and reloads when it gets there.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LISTEN_WAIT_S):
                await self._listening.wait()

    async def stop(self) -> None:
        # A flag as well as cancel(): asyncpg can swallow a cancellation mid-query.
        self._stopping = True
        self._due.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
