from costguard.common.entrypoint import run_service
from costguard.rollup.config import RollupConfig
from costguard.rollup.server import serve

run_service(RollupConfig.from_env, serve)
