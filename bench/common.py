"""What every benchmark shares: a durable private stack, a table printer and the figures.

A benchmark prints its table with ``report`` and records each headline figure with
``figure``: its value beside the baseline measured in the same run, their ratio, and the
goal. ``python -m bench --json`` prints the recorded figures as one JSON object per line.
"""

from __future__ import annotations

import asyncio
import json
import operator
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import asyncpg

from costguard.common.migrate import migrate_up
from costguard.devstack import DevStack


@contextmanager
def bench_stack() -> Iterator[DevStack]:
    """Postgres with fsync on (durable, as in production) and Redis, in a fresh folder."""
    root = Path(tempfile.mkdtemp(prefix="costguard-bench-"))
    root.chmod(0o755)
    stack = DevStack(root, durable=True).start()
    try:
        asyncio.run(_migrate(stack.postgres.dsn))
        yield stack
    finally:
        stack.stop()


async def _migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate_up(conn)
    finally:
        await conn.close()


def percentile(samples: Sequence[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


# Where the tables go: stdout, or stderr when stdout carries the JSON figures.
_TABLES: dict[str, TextIO] = {"stream": sys.stdout}


def say(line: str) -> None:
    print(line, file=_TABLES["stream"], flush=True)


def report(title: str, rows: Sequence[tuple[str, str]]) -> None:
    out = _TABLES["stream"]
    print(f"\n== {title}", file=out)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}", file=out)
    out.flush()


_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Figure:
    """One headline figure. ``goal`` is ``"<op> <number>"`` on the ratio when there is a
    baseline (``">= 0.7"``: at least 0.7 of the baseline), else on the value itself."""

    name: str
    value: float
    unit: str
    baseline: float | None
    goal: str | None

    @property
    def ratio(self) -> float | None:
        return None if self.baseline in (None, 0) else self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        op, bound = self.goal.split()
        measured = self.ratio if self.baseline is not None else self.value
        return None if measured is None else _COMPARE[op](measured, float(bound))

    def as_json(self) -> str:
        ratio = self.ratio
        return json.dumps(
            {
                "name": self.name,
                "value": round(self.value, 6),
                "unit": self.unit,
                "baseline": None if self.baseline is None else round(self.baseline, 6),
                "ratio": None if ratio is None else round(ratio, 4),
                "goal": self.goal,
                "met": self.met,
            }
        )


FIGURES: list[Figure] = []


def figure(
    name: str, value: float, unit: str, *, baseline: float | None = None, goal: str | None = None
) -> Figure:
    """Record a headline figure (printed by ``python -m bench --json``)."""
    if goal is not None:
        op, _, bound = goal.partition(" ")
        try:
            float(bound)
        except ValueError:
            bound = ""
        if op not in _COMPARE or not bound:
            raise ValueError(f"goal {goal!r} is not '<op> <number>'")
    recorded = Figure(name, value, unit, baseline, goal)
    FIGURES.append(recorded)
    return recorded


def table_output(stream: TextIO) -> None:
    """Where the tables go from here on."""
    _TABLES["stream"] = stream


def json_output() -> None:
    """From here on the tables go to stderr: stdout is for the JSON figures."""
    table_output(sys.stderr)


def print_figures() -> None:
    for recorded in FIGURES:
        print(recorded.as_json())


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)
