"""The Starlette application: routes declared as a list, resources opened in lifespan."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
from grpc import aio
from redis import exceptions as redis_errors
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from costguard.common.db import create_pool
from costguard.common.redis import create_redis
from costguard.gateway import (
    api_alerts,
    api_breakdown,
    api_budgets,
    api_cost,
    api_entities,
    api_export,
    api_history,
    api_ops,
    api_session,
    api_users,
)
from costguard.gateway.config import GatewayConfig
from costguard.gateway.csrf import SameOriginWrites
from costguard.gateway.dispatch import AlertDispatcher
from costguard.gateway.middleware import RequestContext, SecurityHeaders
from costguard.gateway.openapi import document
from costguard.gateway.params import BadInput
from costguard.gateway.resources import Resources
from costguard.gateway.user_days import UserDays
from costguard.gateway.webhook import WebhookSender

log = logging.getLogger(__name__)

# web/dist in a checkout; the image sets GATEWAY_WEB_DIST.
_CHECKOUT_DIST = Path(__file__).resolve().parents[5] / "web" / "dist"


async def _bad_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadInput)
    return JSONResponse({"error": str(exc), "field": exc.field}, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable", extra={"error": repr(exc)})
    return JSONResponse({"error": "the database is unavailable; try again"}, status_code=503)


async def _redis_down(request: Request, exc: Exception) -> Response:
    # Sessions live in Redis: a cookie cannot be checked without it (bearer tokens can).
    log.warning("redis unavailable", extra={"error": repr(exc)})
    return JSONResponse({"error": "Redis is unavailable; try again"}, status_code=503)


async def _openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.state.resources.config.core.tiers))


async def _dashboard_root(request: Request) -> Response:
    return RedirectResponse("/admin/cost/")


def _routes(web_dist: Path | None) -> list[Route | Mount]:
    routes: list[Route | Mount] = [
        Route("/healthz", api_ops.healthz),
        Route("/readyz", api_ops.readyz),
        Route("/metrics", api_ops.metrics),
        Route("/api/openapi.json", _openapi),
        Route("/api/admin/session", api_session.sign_in, methods=["POST"]),
        Route("/api/admin/session", api_session.sign_out, methods=["DELETE"]),
        Route("/api/admin/me", api_session.me),
        Route("/api/admin/cost/summary", api_cost.cost_summary),
        Route("/api/admin/cost/users", api_cost.top_users),
        # One more path segment: never matches /users itself.
        Route("/api/admin/cost/users/{user_id}", api_users.user_detail),
        Route("/api/admin/cost/breakdown", api_breakdown.breakdown),
        Route("/api/admin/cost/decisions", api_history.decisions),
        Route("/api/admin/cost/alerts", api_alerts.alerts),
        Route("/api/admin/cost/export.csv", api_export.export_csv),
        Route("/api/admin/cost/budgets", api_budgets.list_budgets, methods=["GET"]),
        Route("/api/admin/cost/budgets", api_budgets.upsert_budget, methods=["POST"]),
        Route("/api/admin/cost/alert:test", api_ops.alert_test, methods=["POST"]),
        Route("/api/admin/cost/episodes/{episode_id}", api_entities.episode),
        Route(
            "/api/admin/cost/episodes/{episode_id}/recalculate",
            api_entities.recalculate_episode,
            methods=["POST"],
        ),
        Route("/api/admin/cost/podcasts/{podcast_id}/episodes", api_entities.podcast_episodes),
        Route("/api/admin/cost/daily", api_entities.daily),
        Route("/api/admin/cost/monthly", api_entities.monthly),
    ]
    if web_dist is not None and (web_dist / "index.html").exists():
        routes += [
            Route("/admin/cost", _dashboard_root),
            Mount("/admin/cost", app=StaticFiles(directory=web_dist, html=True), name="dashboard"),
        ]
    return routes


def create_app(config: GatewayConfig, *, clock: Callable[[], datetime] | None = None) -> Starlette:
    """The gateway; ``clock`` (default: the wall clock) is what its reads take as now."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Reads aggregate many rows (top users over 30 days): group in memory.
        pool = await create_pool(config.database_url, server_settings={"work_mem": "64MB"})
        redis = create_redis(config.redis_url)
        http = httpx.AsyncClient()
        channels = {
            "telemetry": aio.insecure_channel(config.telemetry_addr),
            "throttle": aio.insecure_channel(config.throttle_addr),
            "rollup": aio.insecure_channel(config.rollup_addr),
        }
        if config.session_secret is None:
            log.warning("GATEWAY_SESSION_SECRET is not set: sessions end when this process does")
        secret = (config.session_secret or secrets.token_urlsafe(32)).encode()
        user_days = UserDays(
            pool,
            config.database_url,
            held_days=config.top_users_days,
            today=lambda: app.state.resources.now().date(),
        )
        app.state.resources = Resources(config, pool, redis, channels, http, secret, user_days)
        if clock is not None:
            app.state.resources.clock = clock
        user_days.start()
        app.state.webhook = WebhookSender(config.webhook_url, config.webhook_secret, http, pool)
        dispatcher = AlertDispatcher(
            app.state.webhook,
            pool,
            redis,
            tz=config.core.timezone,
            interval_s=config.alert_dispatch_s,
        )
        app.state.dispatcher = dispatcher
        dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.stop()
            await user_days.stop()
            for channel in reversed(channels.values()):
                await channel.close()
            await http.aclose()
            await redis.aclose()
            await pool.close()

    web_dist = Path(config.web_dist) if config.web_dist else _CHECKOUT_DIST
    return Starlette(
        routes=_routes(web_dist),
        lifespan=lifespan,
        # Outermost first: every answer, a refusal or a failure too, gets an id and the headers.
        middleware=[
            Middleware(RequestContext),
            Middleware(SecurityHeaders),
            Middleware(SameOriginWrites, allowed_origins=config.allowed_origins),
        ],
        exception_handlers={
            BadInput: _bad_input,
            HTTPException: _http_error,
            OSError: _database_down,
            asyncpg.PostgresConnectionError: _database_down,
            asyncpg.InterfaceError: _database_down,
            redis_errors.ConnectionError: _redis_down,
            redis_errors.TimeoutError: _redis_down,
        },
    )
