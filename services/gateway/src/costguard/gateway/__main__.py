import uvicorn

from costguard.common.entrypoint import load_config_or_exit
from costguard.gateway.app import create_app
from costguard.gateway.config import GatewayConfig

config = load_config_or_exit(GatewayConfig.from_env)
uvicorn.run(
    create_app(config),
    host=config.host,
    port=config.port,
    log_config=None,
    access_log=False,
    timeout_graceful_shutdown=int(config.core.shutdown_grace_s),
)
