"""Client side of standard gRPC health checking, for readiness probes and tests."""

from __future__ import annotations

from grpc import aio
from grpc_health.v1 import health_pb2

_CHECK = "/grpc.health.v1.Health/Check"


async def health_status(channel: aio.Channel, service: str = "", *, timeout_s: float = 2.0) -> str:
    """``SERVING``, ``NOT_SERVING`` or ``UNKNOWN``; raises ``grpc.RpcError`` when unreachable."""
    # Called through the channel directly: the HealthStub stubs do not declare its methods.
    check = channel.unary_unary(
        _CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    reply: health_pb2.HealthCheckResponse = await check(
        health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
    )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
