from costguard.common.entrypoint import run_service
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import serve

run_service(ThrottleConfig.from_env, serve)
