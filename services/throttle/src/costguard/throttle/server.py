"""Wiring for ``python -m costguard.throttle``."""

from __future__ import annotations

from dataclasses import dataclass

from costguard.common.counters import LiveCounters
from costguard.common.day_sheets import DaySheets
from costguard.common.db import create_pool
from costguard.common.grpc_server import GrpcServer
from costguard.common.probe import ensure_reachable
from costguard.common.rebuild import CounterReconciler
from costguard.common.redis import create_redis
from costguard.throttle.alerts import AlertRecorder
from costguard.throttle.budgets import BudgetBook
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.decisions import DecisionRecorder
from costguard.throttle.estimate import Estimator
from costguard.throttle.queue import DeferralQueue
from costguard.throttle.reserve import Reserver
from costguard.throttle.service import Throttle
from costguard.throttle.servicer import SERVICE_NAME, ThrottleServicer
from costguard.v1 import throttle_pb2_grpc


@dataclass
class ThrottleApp:
    server: GrpcServer
    throttle: Throttle
    budgets: BudgetBook
    alerts: AlertRecorder
    queue: DeferralQueue
    decisions: DecisionRecorder


async def build(config: ThrottleConfig) -> ThrottleApp:
    pool = await create_pool(config.database_url)
    # Short timeouts: with Redis away, a check answers by the fail policy quickly.
    redis = create_redis(config.redis_url, timeout_s=config.redis_timeout_s)
    budgets = BudgetBook(pool, config.database_url, reload_s=config.budget_reload_s)
    await budgets.start()
    rebuilder = CounterReconciler(
        pool,
        LiveCounters(redis),
        timezone=config.core.timezone,
        aws=config.aws,
        interval_s=60.0,
    )
    alerts = AlertRecorder(pool)
    sheets = DaySheets(seed=config.prices, aws=config.aws, tz=config.core.timezone)
    estimator = Estimator(pool, sheets, config.prices)
    throttle = Throttle(config, budgets, Reserver(redis), rebuilder, alerts, estimator=estimator)
    queue = DeferralQueue(redis, weights=config.queue_weights)
    decisions = DecisionRecorder(pool, config.core.timezone, interval_s=config.decisions_flush_s)
    decisions.start()
    servicer = ThrottleServicer(throttle, queue, config.core.tiers, decisions)
    server = GrpcServer(
        config.core,
        [
            (
                SERVICE_NAME,
                lambda s: throttle_pb2_grpc.add_ThrottleServiceServicer_to_server(servicer, s),
            )
        ],
    )
    server.on_shutdown(pool.close)
    server.on_shutdown(redis.aclose)
    server.on_shutdown(budgets.stop)
    server.on_shutdown(alerts.drain)
    # Hooks run in reverse order: the last flush of the decisions runs before the pool closes.
    server.on_shutdown(decisions.stop)
    return ThrottleApp(server, throttle, budgets, alerts, queue, decisions)


async def build_server(config: ThrottleConfig) -> GrpcServer:
    return (await build(config)).server


async def serve(config: ThrottleConfig) -> None:
    await ensure_reachable(database_url=config.database_url, redis_url=config.redis_url)
    server = await build_server(config)
    await server.serve_until_signal()
