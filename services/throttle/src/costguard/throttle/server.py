"""Wiring for ``python -m costguard.throttle``.

The RPCs answer UNIMPLEMENTED until their issue lands; health, reflection, auth and
graceful shutdown are already real.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc import aio

from costguard.common.db import create_pool
from costguard.common.grpc_server import GrpcServer
from costguard.common.redis import create_redis
from costguard.throttle.config import ThrottleConfig
from costguard.v1 import throttle_pb2, throttle_pb2_grpc

SERVICE_NAME = throttle_pb2.DESCRIPTOR.services_by_name["ThrottleService"].full_name


async def _not_yet(context: aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "arrives with issue 4")


class ThrottleServicer(throttle_pb2_grpc.ThrottleServiceServicer):
    async def Check(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await _not_yet(context)

    async def Defer(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await _not_yet(context)

    async def Lease(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await _not_yet(context)

    async def Ack(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await _not_yet(context)


async def build_server(config: ThrottleConfig) -> GrpcServer:
    pool = await create_pool(config.database_url)
    redis = create_redis(config.redis_url)
    servicer = ThrottleServicer()
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
    return server


async def serve(config: ThrottleConfig) -> None:
    server = await build_server(config)
    await server.serve_until_signal()
