"""The SDK hot path: what recording costs the application, per call, in-process.

Microseconds per ``job_telemetry`` enter/exit and per ``record_llm_event`` (building the
event and queueing it; shipping happens in the background and is not on this path), in
the default mode and in durable mode (each event also written to the journal on disk
before the call returns, fsynced every 50 ms by a background thread), beside creating
and ending an OpenTelemetry SDK span in the same run.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from bench.common import report
from costguard.devstack import free_port
from costguard.sdk import LlmCall, TelemetryClient, UserContext, job_telemetry, record_llm_event

ROUNDS = 5
CALLS = 20_000


async def _best_of(body: Callable[[], Awaitable[None]]) -> float:
    """Best per-call microseconds over ROUNDS rounds of CALLS calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await body()
        best = min(best, (time.perf_counter() - started) / CALLS * 1e6)
    return best


def _offline_client(*, durable: bool = False, spill_dir: Path | None = None) -> TelemetryClient:
    # Nothing listens at the target and the flush interval is an hour: the background
    # shipper never runs during the loop, so this times the caller's path alone.
    return TelemetryClient(
        f"127.0.0.1:{free_port()}",
        flush_interval_s=3600,
        batch_size=10**9,
        max_buffer=10**9,
        durable=durable,
        spill_dir=spill_dir,
    )


async def _per_call(client: TelemetryClient) -> tuple[float, float]:
    """Best microseconds per job_telemetry enter+exit and per record_llm_event."""
    ctx = UserContext("user-1", "pro", domain="audio")
    call = LlmCall(
        llm_model="gpt-4o-mini", input_tokens=1200, cached_input_tokens=200, output_tokens=300
    )

    async def jobs() -> None:
        for _ in range(CALLS):
            async with job_telemetry("transcribe", ctx, client=client):
                pass

    async def llm_events() -> None:
        for _ in range(CALLS):
            record_llm_event(call, client=client)

    return await _best_of(jobs), await _best_of(llm_events)


async def run() -> None:
    tracer = TracerProvider().get_tracer("bench")

    async def spans() -> None:
        for _ in range(CALLS):
            with tracer.start_as_current_span("transcribe"):
                pass

    span_us = await _best_of(spans)
    client = _offline_client()
    job_us, llm_us = await _per_call(client)
    client._buffer.clear()  # benchmark events are not to be shipped or spilled
    await client.close(timeout_s=0.1)

    folder = Path(tempfile.mkdtemp(prefix="costguard-bench-journal-"))
    try:
        durable = _offline_client(durable=True, spill_dir=folder)
        durable_job_us, durable_llm_us = await _per_call(durable)
        durable._buffer.clear()
        await durable.close(timeout_s=0.1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def vs_span(us: float) -> str:
        return f"{us:6.2f} us  ({us / span_us:.2f} x span)"

    report(
        f"SDK hot path (best of {ROUNDS} x {CALLS:,} calls)",
        [
            ("OpenTelemetry span start+end (baseline)", f"{span_us:6.2f} us"),
            ("job_telemetry enter+exit", vs_span(job_us)),
            ("record_llm_event", vs_span(llm_us)),
            (
                "job_telemetry, durable",
                f"{vs_span(durable_job_us)}, {durable_job_us / job_us:.2f} x default",
            ),
            (
                "record_llm_event, durable",
                f"{vs_span(durable_llm_us)}, {durable_llm_us / llm_us:.2f} x default",
            ),
        ],
    )


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
