"""What every benchmark shares: a durable private stack and a figure printer."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

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


def report(title: str, rows: Sequence[tuple[str, str]]) -> None:
    print(f"\n== {title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)
