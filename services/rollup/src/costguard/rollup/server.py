"""Wiring for ``python -m costguard.rollup``.

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
from costguard.rollup.config import RollupConfig
from costguard.v1 import rollup_pb2, rollup_pb2_grpc

SERVICE_NAME = rollup_pb2.DESCRIPTOR.services_by_name["RollupService"].full_name


async def _not_yet(context: aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "arrives with issue 5")


class RollupServicer(rollup_pb2_grpc.RollupServiceServicer):
    async def RollupDate(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await _not_yet(context)

    async def RollupRange(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await _not_yet(context)

    async def RecalculateEntity(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await _not_yet(context)

    async def GetRunStatus(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await _not_yet(context)


async def build_server(config: RollupConfig) -> GrpcServer:
    pool = await create_pool(config.database_url)
    redis = create_redis(config.redis_url)
    servicer = RollupServicer()
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
    server.on_shutdown(redis.aclose)
    return server


async def serve(config: RollupConfig) -> None:
    server = await build_server(config)
    await server.serve_until_signal()
