"""Prometheus ``/metrics`` over HTTP beside a gRPC server, on ``METRICS_PORT``.

Every metric lives in the process's default registry and is named ``costguard_*``; each
service defines its own in a ``metrics`` module. Labels are bounded (tiers, actions,
results, triggers), never user ids. The exporter is prometheus_client's threaded WSGI
server: scraping never waits on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


class MetricsEndpoint:
    """``GET /metrics`` on ``host:port`` (port 0: none). A port already taken is logged, not fatal.

    The host is the gRPC server's (``GRPC_LISTEN``), so a service bound to loopback exports
    on loopback too.
    """

    def __init__(self, port: int, host: str) -> None:
        self._port = port
        self._host = host
        self._server: WSGIServer | None = None

    @property
    def port(self) -> int | None:
        return self._server.server_port if self._server is not None else None

    def start(self) -> None:
        if self._port == 0 or self._server is not None:
            return
        try:
            self._server, _ = start_http_server(self._port, self._host)
        except OSError as exc:
            # Several services on one host (make dev, a test run) may share the default port:
            # the first one exports, the others say why they do not.
            log.warning(
                "metrics not exported: port unavailable",
                extra={"metrics_port": self._port, "error": str(exc)},
            )
            return
        log.info("metrics exported", extra={"metrics_port": self._port})

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
