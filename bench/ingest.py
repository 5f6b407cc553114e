"""Issue 3's ingest figures, from one run on this machine.

- end to end: events/s from SDK batches through gRPC into Postgres (durable, counters
  updated), beside a raw ``copy_records_to_table`` of identical rows into the same
  table in the same run, and a no-op gRPC handler that decodes and discards the same
  batches (the wire's own limit);
- a single-event ``Record`` RPC: p50 and p99 latency.

Headline figure ``ingest_vs_copy``: the end-to-end events/s against the raw COPY's rows/s
(goal: at least 0.7 of it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime

import asyncpg
from grpc import aio

from bench.common import bench_stack, figure, measure_cpu, percentile, report
from costguard.devstack import DevStack, free_port
from costguard.sdk import TelemetryClient
from costguard.telemetry.rows import JOB_COLUMNS, Row, RowBuilder
from costguard.v1 import telemetry_pb2, telemetry_pb2_grpc
from tests.events import batch, job
from tests.processes import ServiceProcess

EVENTS = 100_000
BATCH = 500
SINGLE_CALLS = 2_000


def _events(count: int) -> list[telemetry_pb2.TelemetryEvent]:
    return [
        job(user_id=f"user-{i % 1000}", cpu_ms=i % 5000, rows_read=i % 50) for i in range(count)
    ]


def _rows(events: list[telemetry_pb2.TelemetryEvent]) -> list[Row]:
    builder = RowBuilder(("free", "pro", "enterprise"), datetime.now(UTC))
    return [builder.job(event.job) for event in events]


async def _raw_copy(dsn: str, rows: list[Row]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "telemetry_job_events", records=rows[i : i + BATCH], columns=JOB_COLUMNS
                )
        elapsed = time.perf_counter() - started
        await conn.execute("TRUNCATE telemetry_job_events")
        return elapsed
    finally:
        await conn.close()


async def _wal_position(dsn: str, *, since: int = 0) -> int:
    """Bytes of WAL Postgres has written (since ``since``)."""
    conn = await asyncpg.connect(dsn)
    try:
        written: int = await conn.fetchval(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        )
    finally:
        await conn.close()
    return written - since


async def _through_sdk(target: str, events: list[telemetry_pb2.TelemetryEvent]) -> float:
    client = TelemetryClient(target, batch_size=BATCH, max_buffer=len(events) + 1)
    started = time.perf_counter()
    for event in events:
        client.emit(event)
    delivered = await client.flush(timeout_s=600)
    elapsed = time.perf_counter() - started
    await client.close()
    if not delivered or client.stats.stored != len(events):
        raise RuntimeError(f"not every event was stored: {client.stats}")
    return elapsed


async def _single_record_latency(target: str) -> list[float]:
    samples = []
    async with aio.insecure_channel(target) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        for _ in range(SINGLE_CALLS):
            request = batch(job())
            started = time.perf_counter()
            await stub.Record(request)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _noop_server(port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.noop_server", str(port), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    await process.stdout.readline()  # "ready"
    return process


async def run(stack: DevStack) -> None:
    port = free_port()
    telemetry = ServiceProcess(
        "costguard.telemetry",
        {
            "DATABASE_URL": stack.postgres.dsn,
            "REDIS_URL": stack.redis.url,
            "GRPC_LISTEN": f"127.0.0.1:{port}",
            "LOG_LEVEL": "WARNING",
        },
    )
    # Serving is logged at INFO; start at INFO, the noise is one line.
    telemetry.env["LOG_LEVEL"] = "INFO"
    await telemetry.start()
    await telemetry.wait_for_log("serving")
    noop_port = free_port()
    noop = await _noop_server(noop_port)
    try:
        raw_s, raw_cpu = await measure_cpu(
            stack, None, _raw_copy(stack.postgres.dsn, _rows(_events(EVENTS)))
        )
        noop_s, noop_cpu = await measure_cpu(
            stack, noop.pid, _through_sdk(f"127.0.0.1:{noop_port}", _events(EVENTS))
        )
        assert telemetry.process is not None
        wal_before = await _wal_position(stack.postgres.dsn)
        sdk_s, cpu = await measure_cpu(
            stack, telemetry.process.pid, _through_sdk(f"127.0.0.1:{port}", _events(EVENTS))
        )
        wal_bytes = await _wal_position(stack.postgres.dsn, since=wal_before)
        conn = await asyncpg.connect(stack.postgres.dsn)
        stored = await conn.fetchval("SELECT count(*) FROM telemetry_job_events")
        await conn.close()
        latencies = await _single_record_latency(f"127.0.0.1:{port}")
    finally:
        noop.terminate()
        await noop.wait()
        await telemetry.terminate()
    raw_rate, sdk_rate, noop_rate = EVENTS / raw_s, EVENTS / sdk_s, EVENTS / noop_s
    # Client, telemetry, Postgres and Redis share this machine's cores: the most events a
    # second they could take at the CPU each event cost them.
    cores = os.cpu_count() or 1
    ceiling = cores * EVENTS / cpu.total
    report(
        f"ingest: {EVENTS:,} job events in batches of {BATCH} (cores: {os.cpu_count()})",
        [
            ("raw copy_records_to_table", f"{raw_rate:>10,.0f} rows/s"),
            (
                "SDK -> gRPC -> Postgres + Redis",
                f"{sdk_rate:>10,.0f} events/s  ({stored:,} rows stored)",
            ),
            ("SDK -> gRPC no-op handler", f"{noop_rate:>10,.0f} events/s"),
            ("ratio end-to-end / raw COPY", f"{sdk_rate / raw_rate:.2f}  (goal >= 0.70)"),
            ("ratio end-to-end / no-op gRPC", f"{sdk_rate / noop_rate:.2f}"),
            ("CPU per 1,000 events: telemetry / Postgres / Redis", cpu.per_thousand(EVENTS)),
            ("  events per core: telemetry / Postgres", cpu.per_core(EVENTS)),
            ("  Postgres WAL written per event", f"{wal_bytes / EVENTS:,.0f} bytes"),
            ("  no-op handler's CPU per 1,000 events", f"{1e6 * noop_cpu.service / EVENTS:.1f} ms"),
            (
                "  the SDK's (this process) CPU per 1,000 events",
                f"{1e6 * cpu.client / EVENTS:.1f} ms",
            ),
            (
                "  raw COPY's Postgres CPU per 1,000 rows",
                f"{1e6 * raw_cpu.postgres / EVENTS:.1f} ms",
            ),
            ("  the COPY client's CPU per 1,000 rows", f"{1e6 * raw_cpu.client / EVENTS:.1f} ms"),
            (
                f"  end-to-end with all {cores} cores busy, at this CPU per event",
                f"{ceiling:>10,.0f} events/s  ({ceiling / raw_rate:.2f} of raw COPY)",
            ),
        ],
    )
    figure("ingest_vs_copy", sdk_rate, "events/s", baseline=raw_rate, goal=">= 0.7")
    report(
        f"single-event Record RPC ({SINGLE_CALLS:,} sequential calls)",
        [
            ("p50", f"{percentile(latencies, 50):.2f} ms"),
            ("p99", f"{percentile(latencies, 99):.2f} ms"),
        ],
    )


def main() -> None:
    with bench_stack() as stack:
        asyncio.run(run(stack))


if __name__ == "__main__":
    main()
