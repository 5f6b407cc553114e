"""Wiring for ``python -m costguard.rollup`` (the service) and its CLI."""

from __future__ import annotations

from dataclasses import dataclass

from costguard.common.db import create_pool
from costguard.common.grpc_server import GrpcServer
from costguard.common.probe import ensure_reachable
from costguard.rollup.config import RollupConfig
from costguard.rollup.retention import RetentionLoop
from costguard.rollup.runs import Rollups
from costguard.rollup.schedule import Scheduler
from costguard.rollup.servicer import SERVICE_NAME, RollupServicer
from costguard.v1 import rollup_pb2_grpc


@dataclass
class RollupApp:
    server: GrpcServer
    rollups: Rollups
    scheduler: Scheduler
    retention: RetentionLoop


async def build(config: RollupConfig) -> RollupApp:
    pool = await create_pool(config.database_url)
    rollups = Rollups(
        pool,
        tz=config.core.timezone,
        pricing=config.pricing,
        retention_days=config.retention_days,
    )
    retention = RetentionLoop(pool, retention_days=config.retention_days, tz=config.core.timezone)
    scheduler = Scheduler(
        rollups, nightly_at=config.nightly_at, dirty_interval_s=config.dirty_interval_s
    )
    servicer = RollupServicer(rollups)
    server = GrpcServer(
        config.core,
        [
            (
                SERVICE_NAME,
                lambda s: rollup_pb2_grpc.add_RollupServiceServicer_to_server(servicer, s),
            )
        ],
    )
    server.on_shutdown(pool.close)
    server.on_shutdown(scheduler.stop)
    server.on_shutdown(retention.stop)
    return RollupApp(server, rollups, scheduler, retention)


async def build_server(config: RollupConfig) -> GrpcServer:
    app = await build(config)
    if config.scheduler:  # a CronJob, when it runs the nightly rollup, runs retention too
        app.scheduler.start()
        app.retention.start()
    return app.server


async def serve(config: RollupConfig) -> None:
    await ensure_reachable(database_url=config.database_url)
    server = await build_server(config)
    await server.serve_until_signal()
