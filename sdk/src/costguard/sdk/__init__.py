"""costguard SDK: record what your application spends, and ask before you spend.

from costguard.sdk import UserContext, configure, job_telemetry

configure()  # COSTGUARD_TELEMETRY_ADDR, COSTGUARD_SERVICE_TOKEN
async with job_telemetry("transcribe", UserContext("u1", "pro")) as run:
    run.add_rows(read=120)
"""

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, current_user_context, user_context
from costguard.sdk._default import close, configure, flush
from costguard.sdk._events import (
    CostEvent,
    LlmCall,
    record_llm_event,
    track_cost_event,
    track_cost_events,
)
from costguard.sdk._jobs import JobRun, job_telemetry

__all__ = [
    "CostEvent",
    "JobRun",
    "LlmCall",
    "TelemetryClient",
    "UserContext",
    "close",
    "configure",
    "current_user_context",
    "flush",
    "job_telemetry",
    "record_llm_event",
    "track_cost_event",
    "track_cost_events",
    "user_context",
]
