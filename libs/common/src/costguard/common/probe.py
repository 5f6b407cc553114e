"""At start-up, reach Postgres and Redis once, and say in one line why not.

A well-formed URL can still point at nothing (a closed port), at a database or role that
does not exist, or carry a wrong password. Left to the drivers, each of those is a long
traceback that never names the variable to fix; here each becomes :class:`Unreachable`,
``<VARIABLE>: <what went wrong> (at host:port)``, which the entry points print as one line
before exiting 2. The password in a URL never appears in the message. After start-up the
services keep their own behaviour towards an outage (retries, the throttle's fail policy).
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


async def check_redis(url: str, variable: str = "REDIS_URL") -> None:
    where = _where(url, 6379)
    # No retries: at start-up one clear answer beats three slow ones.
    client = Redis.from_url(
        url,
        socket_connect_timeout=_TIMEOUT_S,
        socket_timeout=_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        await client.ping()
        return
    except redis_errors.TimeoutError:
        problem = f"cannot connect to {where} (no answer within {_TIMEOUT_S:.0f}s)"
    except redis_errors.AuthenticationError as exc:
        problem = f"{exc} (at {where})"
    except redis_errors.ConnectionError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            problem = _network_problem(cause, where, urlsplit(url).hostname)
        else:
            problem = f"cannot connect to {where}: {exc}"
    except redis_errors.RedisError as exc:  # it answered, with an error (NOAUTH, WRONGPASS)
        problem = f"{exc} (at {where})"
    finally:
        await client.aclose()
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
