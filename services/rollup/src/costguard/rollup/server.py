"""Wiring for ``python -m costguard.rollup`` (the service) and its CLI."""

from __future__ import annotations

from dataclasses import dataclass

from costguard.common.db import create_pool
from costguard.common.grpc_server import GrpcServer
from costguard.rollup.config import RollupConfig
from costguard.rollup.runs import Rollups
from costguard.rollup.schedule import Scheduler
from costguard.rollup.servicer import SERVICE_NAME, RollupServicer
from costguard.v1 import rollup_pb2_grpc


@dataclass
class RollupApp:
    server: GrpcServer
    rollups: Rollups
    scheduler: Scheduler


async def build(config: RollupConfig) -> RollupApp:
    pool = await create_pool(config.database_url)
    rollups = Rollups(pool, tz=config.core.timezone, pricing=config.pricing)
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
    return RollupApp(server, rollups, scheduler)


async def build_server(config: RollupConfig) -> GrpcServer:
    app = await build(config)
    if config.scheduler:
        app.scheduler.start()
    return app.server


async def serve(config: RollupConfig) -> None:
    server = await build_server(config)
    await server.serve_until_signal()
