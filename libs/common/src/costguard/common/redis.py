"""Redis access: one client (with its own connection pools) per process.

``REDIS_URL`` names either one server (``redis://``, ``rediss://``, ``unix://``) or a Redis
Cluster (``redis+cluster://host:port``, ``rediss+cluster://`` for TLS): the host is any one
reachable node, a startup node from which the client discovers the others and which slots
each master serves. Both kinds of client answer the same commands, so the code that uses
them takes a :data:`RedisClient` and never asks which it has.

Every multi-key operation costguard sends (a Lua script, a MULTI/EXEC pipeline) names keys
that share one hash tag (the day, ``cg:{2026-11-25}:...``, or the queue's name,
``cgq:{default}:...``), so each lands in one slot and runs on one master.
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry

from costguard.common.config import REDIS_CLUSTER_SCHEMES

RedisClient: TypeAlias = Redis | RedisCluster


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in REDIS_CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """``url`` as redis-py reads it: a cluster URL's scheme made the plain one of a node."""
    parts = urlsplit(url)
    scheme = REDIS_CLUSTER_SCHEMES.get(parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme)) if scheme else url


class _Cluster(RedisCluster):
    """A cluster client whose "cannot reach the cluster" is a ``ConnectionError``.

    redis-py discovers the cluster on first use and raises ``RedisClusterException`` (not a
    ``RedisError``) when no startup node answers or the slots are not all covered. Every
    caller handles an unreachable Redis as ``RedisError`` (the throttle's fail policy,
    telemetry's rebuild, the gateway's 503): this makes the cluster fail the same way. Other
    cluster errors (keys of one call in different slots) stay what they are: bugs, not
    outages.
    """

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except redis_errors.RedisClusterException as exc:
            raise redis_errors.ConnectionError(f"Redis Cluster unreachable: {exc}") from exc


def create_redis(url: str, *, timeout_s: float = 2.0, retry: Retry | None = None) -> RedisClient:
    """The client ``url`` names (see the module's docstring), replies decoded as text."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": timeout_s,
        "socket_timeout": timeout_s,
    }
    if retry is not None:
        options["retry"] = retry
    if is_cluster_url(url):
        return _Cluster.from_url(node_url(url), **options)
    return Redis.from_url(url, **options)


async def ping(client: RedisClient) -> None:
    """PING the server, or every master of a cluster: a cluster client's own ``ping()`` asks
    one node only, and the master that holds today's counters may be another."""
    if isinstance(client, RedisCluster):
        await client.ping(target_nodes=RedisCluster.PRIMARIES)
    else:
        await client.ping()
