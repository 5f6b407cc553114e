"""HTTP handlers. Each is short: parse, call a query, answer JSON."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from costguard.common.health import health_status
from costguard.gateway.auth import bearer_token, identify

_PROBE_TIMEOUT_S = 2.0


def _resources(request: Request) -> Any:
    return request.app.state.resources


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _check_postgres(res: Any) -> None:
    await res.pool.fetchval("SELECT 1")


async def _check_redis(res: Any) -> None:
    await res.redis.ping()


async def _check_grpc(channel: Any) -> None:
    status = await health_status(channel, timeout_s=_PROBE_TIMEOUT_S)
    if status != "SERVING":
        raise RuntimeError(status)


async def readyz(request: Request) -> JSONResponse:
    res = _resources(request)
    checks = {
        "postgres": _check_postgres(res),
        "redis": _check_redis(res),
        **{name: _check_grpc(channel) for name, channel in res.channels.items()},
    }
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(c, _PROBE_TIMEOUT_S) for c in checks.values()), return_exceptions=True
    )
    status = {
        name: "ok" if not isinstance(outcome, BaseException) else f"down: {type(outcome).__name__}"
        for name, outcome in zip(checks, outcomes, strict=True)
    }
    ready = all(value == "ok" for value in status.values())
    return JSONResponse({"ready": ready, "checks": status}, status_code=200 if ready else 503)


def _require_admin(request: Request) -> JSONResponse | None:
    presented = bearer_token(request)
    if presented is None:
        return error(401, "missing credentials: send Authorization: Bearer <admin token>")
    token = identify(_resources(request).config.admin_tokens, presented)
    if token is None:
        return error(401, "invalid credentials")
    if token.role != "admin":
        return error(403, "the admin role is required")
    return None


def _money(value: Decimal) -> str:
    return f"{value:.6f}"


async def cost_summary(request: Request) -> JSONResponse:
    denied = _require_admin(request)
    if denied:
        return denied
    raw_days = request.query_params.get("days", "7")
    if raw_days not in ("7", "30"):
        return error(400, "days must be 7 or 30", field="days")
    days = int(raw_days)
    res = _resources(request)
    today = datetime.now(res.config.core.timezone).date()
    start = today - timedelta(days=days - 1)
    rows = await res.pool.fetch(
        "SELECT date, jobs, ai_calls, cpu_ms, tokens_in, tokens_out, cost_usd "
        "FROM cost_global_daily WHERE date BETWEEN $1 AND $2 ORDER BY date",
        start,
        today,
    )
    by_date = {row["date"]: row for row in rows}
    series = []
    for offset in range(days):
        day: date = start + timedelta(days=offset)
        row = by_date.get(day)
        series.append(
            {
                "date": day.isoformat(),
                "cost_usd": _money(row["cost_usd"] if row else Decimal(0)),
                "jobs": row["jobs"] if row else 0,
                "ai_calls": row["ai_calls"] if row else 0,
            }
        )
    totals = {
        key: sum(row[key] for row in rows)
        for key in ("jobs", "ai_calls", "cpu_ms", "tokens_in", "tokens_out")
    }
    totals["cost_usd"] = _money(sum((row["cost_usd"] for row in rows), Decimal(0)))
    return JSONResponse(
        {
            "days": days,
            "from": start.isoformat(),
            "to": today.isoformat(),
            "totals": totals,
            "series": series,
        }
    )
