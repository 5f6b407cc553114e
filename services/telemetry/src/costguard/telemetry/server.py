"""Wiring: pools, the servicers, the gRPC server and the OTLP/HTTP listener beside it, for
``python -m costguard.telemetry``."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from costguard.common.counters import LiveCounters
from costguard.common.day_sheets import DaySheets
from costguard.common.db import create_pool
from costguard.common.grpc_server import GrpcServer
from costguard.common.probe import ensure_reachable
from costguard.common.rebuild import CounterReconciler
from costguard.common.redis import create_redis
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.ingest import Ingestor
from costguard.telemetry.otlp_export import SERVICE_NAME as TRACE_SERVICE
from costguard.telemetry.otlp_export import TraceServicer, add_trace_service
from costguard.telemetry.otlp_http import OtlpHttpServer, TracesEndpoint, otlp_app
from costguard.telemetry.servicer import SERVICE_NAME, TelemetryServicer
from costguard.v1 import telemetry_pb2_grpc


@dataclass
class Telemetry:
    server: GrpcServer
    ingestor: Ingestor
    reconciler: CounterReconciler
    otlp_http: OtlpHttpServer  # started and stopped with ``server``


async def build(config: TelemetryConfig) -> Telemetry:
    pool = await create_pool(config.database_url, max_size=20)
    redis = create_redis(config.redis_url)
    counters = LiveCounters(redis)
    reconciler = CounterReconciler(
        pool,
        counters,
        timezone=config.core.timezone,
        aws=config.aws,
        interval_s=config.reconcile_interval_s,
    )
    ingestor = Ingestor(
        pool,
        counters,
        tiers=config.core.tiers,
        timezone=config.core.timezone,
        sheets=DaySheets(seed=config.prices, aws=config.aws, tz=config.core.timezone),
        on_counters_failed=reconciler.request,
    )
    servicer = TelemetryServicer(ingestor)
    traces = TraceServicer(ingestor, config.otlp_defaults)
    server = GrpcServer(
        config.core,
        [
            (
                SERVICE_NAME,
                lambda s: telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(servicer, s),
            ),
            (
                TRACE_SERVICE,
                lambda s: add_trace_service(traces, s),
            ),
        ],
    )
    otlp_http = OtlpHttpServer(
        otlp_app(TracesEndpoint(ingestor, config.otlp_defaults, config.core.service_token)),
        host=config.core.grpc_listen.rpartition(":")[0].strip("[]"),
        port=config.otlp_http_port,
        grace_s=config.core.shutdown_grace_s,
    )
    server.on_start(otlp_http.start)
    server.on_shutdown(pool.close)
    server.on_shutdown(redis.aclose)
    server.on_shutdown(reconciler.stop)
    server.on_shutdown(ingestor.drain)  # batches whose callers left still commit
    server.on_shutdown(otlp_http.stop)  # first: its requests in flight finish
    return Telemetry(server, ingestor, reconciler, otlp_http)


async def build_server(config: TelemetryConfig) -> GrpcServer:
    """The gRPC server with the counter reconciler running beside it."""
    telemetry = await build(config)
    telemetry.reconciler.start()
    return telemetry.server


# Ingest makes and drops tens of thousands of small objects a batch (rows, tuples, figures),
# none of them in reference cycles: at the default threshold (700) the cycle collector runs
# a few times a batch, now and then across every object the process holds.
_GC_THRESHOLD = (20_000, 10, 10)


async def serve(config: TelemetryConfig) -> None:
    await ensure_reachable(database_url=config.database_url, redis_url=config.redis_url)
    server = await build_server(config)
    # What start-up loaded (modules, the price library) lives as long as the process: the
    # collector need not look at it again.
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLD)
    await server.serve_until_signal()
