from costguard.common.entrypoint import refuse_arguments, run_service
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import serve

refuse_arguments(
    "costguard.telemetry",
    "Runs the telemetry gRPC service (costguard.v1.TelemetryService) until SIGTERM or SIGINT.",
    ["DATABASE_URL", "REDIS_URL", "GRPC_LISTEN", "COSTGUARD_SERVICE_TOKEN"],
)
run_service(TelemetryConfig.from_env, serve)
