"""costguard SDK: record what your application spends.

from costguard.sdk import UserContext, configure, job_telemetry

configure("telemetry:50051", token=...)
async with job_telemetry("transcribe", UserContext("u1", "pro")) as run:
    run.add_rows(read=120)
"""

from costguard.sdk._client import TelemetryClient
from costguard.sdk._default import close, configure, flush
from costguard.sdk._jobs import JobRun, UserContext, job_telemetry

__all__ = [
    "JobRun",
    "TelemetryClient",
    "UserContext",
    "close",
    "configure",
    "flush",
    "job_telemetry",
]
