"""A ThrottleService whose Check answers a fixed reply of the same size: the wire's limit."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from grpc import aio

from costguard.v1 import throttle_pb2, throttle_pb2_grpc

# About what a real ALLOW looks like: a reason, a reservation id, three caps remaining.
REPLY = throttle_pb2.CheckResponse(
    action=throttle_pb2.ALLOW,
    reason="allowed: tightest cap is global cpu_ms at 12% (120,000,000 of 1,000,000,000) "
    "after this request",
    reservation_id="0" * 32,
    remaining=[
        throttle_pb2.Remaining(
            scope="global", metric=m, cap="1000000000", used="120000000", remaining="880000000"
        )
        for m in ("jobs", "cpu_ms", "cost_usd")
    ],
)


class Fixed(throttle_pb2_grpc.ThrottleServiceServicer):
    async def Check(
        self, request: throttle_pb2.CheckRequest, context: aio.ServicerContext[Any, Any]
    ) -> throttle_pb2.CheckResponse:
        return REPLY

    async def Release(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        return throttle_pb2.ReleaseResponse()

    async def Defer(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        return throttle_pb2.DeferResponse()

    async def Lease(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        return throttle_pb2.LeaseResponse()

    async def Ack(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        return throttle_pb2.AckResponse()


async def main(port: int) -> None:
    server = aio.server()
    throttle_pb2_grpc.add_ThrottleServiceServicer_to_server(Fixed(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
