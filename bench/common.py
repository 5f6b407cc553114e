"""What every benchmark shares: a durable private stack, a table printer and the figures.

A benchmark prints its table with ``report`` and records each headline figure with
``figure``: its value beside the baseline measured in the same run, their ratio, and the
goal. ``python -m bench --json`` prints the recorded figures as one JSON object per line.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

import asyncpg
from redis.asyncio import Redis

from costguard.common.migrate import migrate_up
from costguard.devstack import DevStack

T = TypeVar("T")


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


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU seconds process ``pid`` has used (with ``reaped_children``, also
    its children that exited and were waited for), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICKS_PER_S


def postgres_cpu_seconds(stack: DevStack) -> float:
    """CPU seconds the stack's Postgres has used: the postmaster, the backends that
    exited, and those running now."""
    pid_file = stack.postgres.data_dir / "pgdata" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    total = cpu_seconds(postmaster, reaped_children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError):
            continue  # exited meanwhile
    return total


async def redis_cpu_seconds(url: str) -> float:
    """CPU seconds the Redis at ``url`` has used (``INFO cpu``)."""
    redis = Redis.from_url(url)
    try:
        info = await redis.info("cpu")
    finally:
        await redis.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds a service process, Postgres and Redis used over one stretch of a run."""

    service: float
    postgres: float
    redis: float
    client: float = 0.0  # this process: the benchmark's own client

    @property
    def total(self) -> float:
        return self.service + self.postgres + self.redis + self.client

    def per_thousand(self, operations: int) -> str:
        ms = [1000 * 1000 * s / operations for s in (self.service, self.postgres, self.redis)]
        return " / ".join(f"{m:.1f}" for m in ms) + " ms"

    def per_core(self, operations: int) -> str:
        """Operations per CPU-second of the service, and of Postgres."""
        rates = [f"{operations / s:,.0f}" if s else "-" for s in (self.service, self.postgres)]
        return " / ".join(rates) + " per CPU-second"


async def measure_cpu(
    stack: DevStack, service_pid: int | None, work: Awaitable[T]
) -> tuple[T, CpuUse]:
    """Run ``work``; what it returned and the CPU it cost the service, Postgres and Redis."""
    service = cpu_seconds(service_pid) if service_pid else 0.0
    postgres, redis = postgres_cpu_seconds(stack), await redis_cpu_seconds(stack.redis.url)
    client = time.process_time()
    result = await work
    client = time.process_time() - client
    return result, CpuUse(
        (cpu_seconds(service_pid) - service) if service_pid else 0.0,
        postgres_cpu_seconds(stack) - postgres,
        await redis_cpu_seconds(stack.redis.url) - redis,
        client,
    )


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
