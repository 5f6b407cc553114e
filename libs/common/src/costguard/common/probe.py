"""At start-up, reach Postgres and Redis once, and say in one line why not.

A well-formed URL can still point at nothing (a closed port), at a database or role that
does not exist, or carry a wrong password. Left to the drivers, each of those is a long
traceback that never names the variable to fix; here each becomes :class:`Unreachable`,
``<VARIABLE>: <what went wrong> (at host:port)``, which the entry points print as one line
before exiting 2. The password in a URL never appears in the message. A ``REDIS_URL`` naming
one server that is a Redis Cluster node (or a cluster whose node is not one) is refused the
same way, and every master of a cluster must answer. After start-up the services
keep their own behaviour towards an outage (retries, the throttle's fail policy).
"""

from __future__ import annotations

import asyncio
import os
import socket
from urllib.parse import parse_qs, urlsplit

import asyncpg
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from costguard.common.redis import create_redis, is_cluster_url, node_url, ping

_TIMEOUT_S = 10.0


class Unreachable(Exception):
    """A dependency named by ``variable`` cannot be used; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def _where(url: str, default_port: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname or parse_qs(parts.query).get("host", ["the local socket"])[0]
    if host.startswith("/"):
        return host
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or default_port}"


def _without_password(url: str, text: str) -> str:
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def _network_problem(error: OSError, where: str, host: str | None) -> str:
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host {host} ({(error.strerror or str(error)).lower()})"
    reason = os.strerror(error.errno).lower() if error.errno else str(error)
    return f"cannot connect to {where} ({reason})"


async def connect_postgres(url: str, variable: str = "DATABASE_URL") -> asyncpg.Connection:
    """One connection to ``url``, or :class:`Unreachable` saying why not."""
    where = _where(url, 5432)
    try:
        return await asyncpg.connect(url, timeout=_TIMEOUT_S)
    except TimeoutError:
        problem = f"cannot connect to {where} (no answer within {_TIMEOUT_S:.0f}s)"
    except OSError as exc:
        problem = _network_problem(exc, where, urlsplit(url).hostname)
    except asyncpg.PostgresError as exc:  # the server answered, and refused
        problem = f"{exc} (at {where})"
    except (asyncpg.InterfaceError, ValueError) as exc:  # e.g. an option asyncpg rejects
        problem = f"cannot connect to {where}: {exc}"
    raise Unreachable(variable, _without_password(url, problem))


async def check_postgres(url: str, variable: str = "DATABASE_URL") -> None:
    conn = await connect_postgres(url, variable)
    await conn.close()


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)  # at start-up one clear answer beats three slow ones


async def _ping_node(url: str, where: str, *, cluster: bool) -> str | None:
    """PING the one server ``url`` names; the problem when it is a cluster node and the URL
    names one server, or the other way round (a plain client of a cluster node reaches only
    that node's slots: most days' counters would fail)."""
    client = Redis.from_url(
        url, socket_connect_timeout=_TIMEOUT_S, socket_timeout=_TIMEOUT_S, retry=_no_retry()
    )
    try:
        await client.ping()
        try:
            enabled = bool((await client.info("cluster")).get("cluster_enabled"))
        except redis_errors.ResponseError:
            return None  # INFO not allowed to this user: nothing to compare
    finally:
        await client.aclose()
    tls = urlsplit(url).scheme == "rediss"
    if enabled and not cluster:
        return f"{where} is a Redis Cluster node: use {'rediss' if tls else 'redis'}+cluster://"
    if cluster and not enabled:
        return f"{where} is not a Redis Cluster node: use {'rediss' if tls else 'redis'}://"
    return None


async def _node_problem(url: str, where: str, *, cluster: bool) -> str | None:
    try:
        return await _ping_node(url, where, cluster=cluster)
    except redis_errors.TimeoutError:
        return f"cannot connect to {where} (no answer within {_TIMEOUT_S:.0f}s)"
    except redis_errors.AuthenticationError as exc:
        return f"{exc} (at {where})"
    except redis_errors.ConnectionError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            return _network_problem(cause, where, urlsplit(url).hostname)
        return f"cannot connect to {where}: {exc}"
    except redis_errors.RedisError as exc:  # it answered, with an error (NOAUTH, WRONGPASS)
        return f"{exc} (at {where})"


async def _cluster_problem(url: str, where: str) -> str | None:
    """Through the startup node at ``where``: every slot served, every master reachable."""
    client = create_redis(url, timeout_s=_TIMEOUT_S, retry=_no_retry())
    try:
        await ping(client)
        return None
    except redis_errors.RedisError as exc:
        return f"the Redis Cluster found at {where} is not usable: {exc}"
    finally:
        await client.aclose()


async def check_redis(url: str, variable: str = "REDIS_URL") -> None:
    node = node_url(url)
    where = _where(node, 6379)
    cluster = is_cluster_url(url)
    problem = await _node_problem(node, where, cluster=cluster)
    if problem is None and cluster:
        problem = await _cluster_problem(url, where)
    if problem is not None:
        raise Unreachable(variable, _without_password(url, problem))


async def ensure_reachable(*, database_url: str, redis_url: str | None = None) -> None:
    """Both at once; Postgres's problem first when both have one."""
    checks = [check_postgres(database_url)]
    if redis_url is not None:
        checks.append(check_redis(redis_url))
    outcomes = await asyncio.gather(*checks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
