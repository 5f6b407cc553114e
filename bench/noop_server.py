"""A TelemetryService whose handlers decode the batches and discard them: the wire's limit."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from grpc import aio

from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc


class Discard(telemetry_pb2_grpc.TelemetryServiceServicer):
    async def Record(
        self, request: telemetry_pb2.RecordRequest, context: aio.ServicerContext[object, object]
    ) -> telemetry_pb2.RecordResponse:
        return telemetry_pb2.RecordResponse(accepted=len(request.events))

    async def RecordStream(
        self,
        request_iterator: AsyncIterator[telemetry_pb2.RecordRequest],
        context: aio.ServicerContext[object, object],
    ) -> telemetry_pb2.RecordResponse:
        accepted = 0
        async for request in request_iterator:
            accepted += len(request.events)
        return telemetry_pb2.RecordResponse(accepted=accepted)


async def main(port: int) -> None:
    server = aio.server()
    telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(Discard(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
