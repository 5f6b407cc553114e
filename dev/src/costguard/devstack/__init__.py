"""A private Postgres and Redis for ``make dev`` and the tests (never for production)."""

from costguard.devstack.cluster import LocalRedisCluster
from costguard.devstack.stack import DevStack, LocalPostgres, LocalRedis, free_port

__all__ = ["DevStack", "LocalPostgres", "LocalRedis", "LocalRedisCluster", "free_port"]
