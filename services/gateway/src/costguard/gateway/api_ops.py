"""Health, readiness, metrics and the alert test."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.common.health import health_status
from costguard.common.redis import ping
from costguard.gateway.auth import admin_only
from costguard.gateway.resources import Resources, resources

_PROBE_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _check_grpc(channel: Any) -> None:
    status = await health_status(channel, timeout_s=_PROBE_TIMEOUT_S)
    if status != "SERVING":
        raise RuntimeError(status)


async def readyz(request: Request) -> Response:
    res: Resources = resources(request)
    checks = {
        "postgres": res.pool.fetchval("SELECT 1"),
        "redis": ping(res.redis),  # every master of a cluster
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


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@admin_only
async def alert_test(request: Request) -> Response:
    sender = request.app.state.webhook
    if not sender.url:
        return JSONResponse(
            {"error": "no webhook is configured", "field": "ALERT_WEBHOOK_URL"}, status_code=409
        )
    result = await sender.send(
        "test",
        "costguard: a test alert, sent from the admin API",
        {"sent_by": request.state.admin.name},
    )
    return JSONResponse(
        {
            "delivered": result.delivered,
            "status": result.status,
            "attempts": result.attempts,
            "error": result.error,
        }
    )
