"""Start-up and graceful shutdown shared by every gRPC service.

Each server registers standard health checking and reflection, requires the service
token when one is configured, tags each call with a request id (``request_ids``), exports
Prometheus metrics on ``METRICS_PORT``, and on SIGTERM or SIGINT drains: it reports NOT_SERVING,
stops accepting calls, lets in-flight calls finish within the grace period, then runs
the shutdown hooks in reverse order of registration (flush buffers, close pools).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from costguard.common.auth import ServiceTokenInterceptor
from costguard.common.config import CoreConfig
from costguard.common.metrics import MetricsEndpoint
from costguard.common.request_decoding import RequestDecodingInterceptor
from costguard.common.request_ids import RequestIdInterceptor

log = logging.getLogger(__name__)

Register = Callable[[aio.Server], None]
ShutdownHook = Callable[[], Awaitable[object]]


class GrpcServer:
    def __init__(self, config: CoreConfig, services: Sequence[tuple[str, Register]]) -> None:
        self._config = config
        self._service_names = [name for name, _ in services]
        # The request id first, so that a call refused for its token is logged with its id.
        interceptors: list[aio.ServerInterceptor] = [RequestIdInterceptor()]
        if config.service_token:
            interceptors.append(ServiceTokenInterceptor(config.service_token))
        # Innermost: the handlers above keep its deserializer, which never raises.
        interceptors.append(RequestDecodingInterceptor())
        self._server = aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
        )
        for _, register in services:
            register(self._server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self._hooks: list[ShutdownHook] = []
        self._stopped = asyncio.Event()
        self.port = 0
        host = config.grpc_listen.rpartition(":")[0].strip("[]")
        self.metrics = MetricsEndpoint(config.metrics_port, host)

    def on_shutdown(self, hook: ShutdownHook) -> None:
        """Run ``hook`` at shutdown; hooks run in reverse order of registration."""
        self._hooks.append(hook)

    async def start(self) -> int:
        self.port = self._server.add_insecure_port(self._config.grpc_listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self._config.grpc_listen}")
        await self._server.start()
        self.metrics.start()
        for name in ("", *self._service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            extra={
                "listen": self._config.grpc_listen,
                "port": self.port,
                "auth": bool(self._config.service_token),
                "metrics_port": self.metrics.port,
            },
        )
        return self.port

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(self._config.shutdown_grace_s)
        await self.metrics.stop()
        for hook in reversed(self._hooks):
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")
        log.info("stopped")

    async def serve_until_signal(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        serving = asyncio.ensure_future(self._server.wait_for_termination())
        signalled = asyncio.ensure_future(stop.wait())
        await asyncio.wait({serving, signalled}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
        await self.stop()
        signalled.cancel()
        serving.cancel()
