"""costguard SDK: record what your application spends, and ask before you spend.

from costguard.sdk import UserContext, configure, job_telemetry

configure()  # COSTGUARD_TELEMETRY_ADDR, COSTGUARD_SERVICE_TOKEN
async with job_telemetry("transcribe", UserContext("u1", "pro")) as run:
    run.add_rows(read=120)
"""

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, current_user_context, user_context
from costguard.sdk._default import close, configure, flush, flush_blocking
from costguard.sdk._entities import mark_episode_complete, schedule_episode_cost
from costguard.sdk._events import (
    CostEvent,
    LlmCall,
    record_llm_event,
    track_cost_event,
    track_cost_event_batch,
    track_cost_events,
)
from costguard.sdk._insight import (
    InsightStore,
    MemoryInsightStore,
    RedisInsightStore,
    StoredInsight,
    cached_insight,
    insight_input_hash,
)
from costguard.sdk._jobs import JobRun, job_telemetry
from costguard.sdk._request_id import current_request_id, request_id
from costguard.sdk._throttle import (
    BudgetDecision,
    ThrottleClient,
    check_budget_and_maybe_defer,
    release_reservation,
)

__all__ = [
    "BudgetDecision",
    "CostEvent",
    "InsightStore",
    "JobRun",
    "LlmCall",
    "MemoryInsightStore",
    "RedisInsightStore",
    "StoredInsight",
    "TelemetryClient",
    "ThrottleClient",
    "UserContext",
    "cached_insight",
    "check_budget_and_maybe_defer",
    "close",
    "configure",
    "current_request_id",
    "current_user_context",
    "flush",
    "flush_blocking",
    "insight_input_hash",
    "job_telemetry",
    "mark_episode_complete",
    "record_llm_event",
    "release_reservation",
    "request_id",
    "schedule_episode_cost",
    "track_cost_event",
    "track_cost_event_batch",
    "track_cost_events",
    "user_context",
]
