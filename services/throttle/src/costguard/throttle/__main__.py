from costguard.common.entrypoint import refuse_arguments, run_service
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import serve

refuse_arguments(
    "costguard.throttle",
    "Runs the throttle gRPC service (costguard.v1.ThrottleService) until SIGTERM or SIGINT.",
    ["DATABASE_URL", "REDIS_URL", "GRPC_LISTEN", "COSTGUARD_SERVICE_TOKEN", "THROTTLE_*"],
)
run_service(ThrottleConfig.from_env, serve)
