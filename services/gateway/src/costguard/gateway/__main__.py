import uvicorn

from costguard.common.entrypoint import load_config_or_exit, refuse_arguments, run_or_exit
from costguard.common.probe import ensure_reachable
from costguard.gateway.app import create_app
from costguard.gateway.config import GatewayConfig

refuse_arguments(
    "costguard.gateway",
    "Runs the gateway (the admin API and dashboard, over HTTP) until SIGTERM or SIGINT.",
    ["DATABASE_URL", "REDIS_URL", "GATEWAY_LISTEN", "COSTGUARD_ADMIN_TOKENS"],
)
config = load_config_or_exit(GatewayConfig.from_env)
# Before uvicorn: a pool that fails inside its lifespan is a traceback, not one line.
run_or_exit(ensure_reachable(database_url=config.database_url, redis_url=config.redis_url))
uvicorn.run(
    create_app(config),
    host=config.host,
    port=config.port,
    log_config=None,
    access_log=False,
    timeout_graceful_shutdown=int(config.core.shutdown_grace_s),
)
