"""Issue 6's gateway figures: p50/p99 of summary?days=30 and users?days=30 over 100,000
users' worth of daily aggregates (30 days of cost_user_daily rows), through the real ASGI
app in this process."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx

from bench.common import bench_stack, percentile, report
from costguard.common.db import create_pool
from costguard.devstack import DevStack
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig

USERS, DAYS, CALLS = 100_000, 30, 20
TOKEN = secrets.token_urlsafe(16)

_FILL_USERS = """
INSERT INTO cost_user_daily
    (user_id, date, tier, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd)
SELECT 'user-' || u, current_date - d, (ARRAY['free','pro','enterprise'])[1 + u % 3],
       u % 40, u % 9, (u % 5000) * 10, u % 20000, u % 3000, ((u % 997) * 0.0013)::numeric(18, 8)
FROM generate_series(1, $1) AS u, generate_series(0, $2 - 1) AS d
"""
_FILL_GLOBAL = """
INSERT INTO cost_global_daily
    (date, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd, tier_breakdown_json)
SELECT date, sum(jobs), sum(ai_calls), sum(cpu_ms), sum(tokens_in), sum(tokens_out), sum(cost_usd),
       jsonb_build_object('free', jsonb_build_object('cost_usd', (sum(cost_usd) / 3)::text))
FROM cost_user_daily GROUP BY date
"""


async def run(stack: DevStack) -> None:
    pool = await create_pool(stack.postgres.dsn, max_size=2)
    await pool.execute(_FILL_USERS, USERS, DAYS)
    await pool.execute(_FILL_GLOBAL)
    await pool.execute("VACUUM ANALYZE")
    await pool.close()
    env = {
        "DATABASE_URL": stack.postgres.dsn,
        "REDIS_URL": stack.redis.url,
        "COSTGUARD_ADMIN_TOKENS": f"bench:admin:{hash_token(TOKEN)}",
        "LOG_LEVEL": "WARNING",
    }
    app = create_app(GatewayConfig.from_env(env))
    rows = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            for path in ("/api/admin/cost/summary?days=30", "/api/admin/cost/users?days=30"):
                samples = []
                for _ in range(CALLS):
                    started = time.perf_counter()
                    reply = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
                    samples.append((time.perf_counter() - started) * 1000)
                    if reply.status_code != 200:
                        raise RuntimeError(f"{path}: {reply.status_code} {reply.text[:200]}")
                p50, p99 = percentile(samples, 50), percentile(samples, 99)
                rows.append((path, f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"))
    report(f"gateway over {USERS:,} users x {DAYS} days of aggregates ({CALLS} calls each)", rows)


def main() -> None:
    with bench_stack() as stack:
        asyncio.run(run(stack))


if __name__ == "__main__":
    main()
