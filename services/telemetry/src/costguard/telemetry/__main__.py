from costguard.common.entrypoint import run_service
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import serve

run_service(TelemetryConfig.from_env, serve)
