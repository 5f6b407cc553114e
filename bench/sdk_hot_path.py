"""Issue 3's SDK hot path: what recording costs the application, per call, in-process.

Microseconds per ``job_telemetry`` enter/exit and per ``record_llm_event`` (building the
event and queueing it; shipping happens in the background and is not on this path),
beside creating and ending an OpenTelemetry SDK span in the same run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

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


async def run() -> None:
    # Nothing listens at the target and the flush interval is an hour: the background
    # shipper never runs during the loop, so this times the caller's path alone.
    client = TelemetryClient(
        f"127.0.0.1:{free_port()}", flush_interval_s=3600, batch_size=10**9, max_buffer=10**9
    )
    ctx = UserContext("user-1", "pro", domain="audio")
    tracer = TracerProvider().get_tracer("bench")
    call = LlmCall(
        model="gpt-4o-mini", input_tokens=1200, cached_input_tokens=200, output_tokens=300
    )

    async def jobs() -> None:
        for _ in range(CALLS):
            async with job_telemetry("transcribe", ctx, client=client):
                pass

    async def llm_events() -> None:
        for _ in range(CALLS):
            record_llm_event(call, client=client)

    async def spans() -> None:
        for _ in range(CALLS):
            with tracer.start_as_current_span("transcribe"):
                pass

    span_us = await _best_of(spans)
    job_us = await _best_of(jobs)
    llm_us = await _best_of(llm_events)
    report(
        f"SDK hot path (best of {ROUNDS} x {CALLS:,} calls)",
        [
            ("OpenTelemetry span start+end", f"{span_us:6.2f} us"),
            ("job_telemetry enter+exit", f"{job_us:6.2f} us  ({job_us / span_us:.2f} x span)"),
            ("record_llm_event", f"{llm_us:6.2f} us  ({llm_us / span_us:.2f} x span)"),
        ],
    )
    client._buffer.clear()  # benchmark events are not to be shipped or spilled
    await client.close(timeout_s=0.1)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
