"""Wiring: pools, the servicer and the gRPC server for ``python -m costguard.telemetry``."""

from __future__ import annotations

from costguard.common.db import create_pool
from costguard.common.grpc_server import GrpcServer
from costguard.common.redis import create_redis
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.servicer import SERVICE_NAME, TelemetryServicer
from costguard.v1 import telemetry_pb2_grpc


async def build_server(config: TelemetryConfig) -> GrpcServer:
    pool = await create_pool(config.database_url)
    redis = create_redis(config.redis_url)
    servicer = TelemetryServicer(pool)
    server = GrpcServer(
        config.core,
        [
            (
                SERVICE_NAME,
                lambda s: telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(servicer, s),
            )
        ],
    )
    server.on_shutdown(pool.close)
    server.on_shutdown(redis.aclose)
    return server


async def serve(config: TelemetryConfig) -> None:
    server = await build_server(config)
    await server.serve_until_signal()
