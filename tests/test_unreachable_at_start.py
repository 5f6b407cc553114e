"""A well-formed URL that leads nowhere stops every entry point with one line naming it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from costguard.devstack import DevStack, free_port
from tests.processes import poll_until, run_to_exit

PASSWORD = "hunter2-never-shown"
ROLE = "cg_password_probe"

# Module, arguments: every entry point that opens Postgres, and those that open Redis.
POSTGRES_USERS: list[tuple[str, list[str]]] = [
    ("costguard.telemetry", []),
    ("costguard.throttle", []),
    ("costguard.gateway", []),
    ("costguard.rollup", ["serve"]),
    ("costguard.rollup", ["rollup", "--date", "2026-11-20"]),
    ("costguard.rollup", ["retention"]),
    ("costguard.common.migrate", ["up"]),
]
REDIS_USERS: list[tuple[str, list[str]]] = [
    ("costguard.telemetry", []),
    ("costguard.throttle", []),
    ("costguard.gateway", []),
]


def _dsn(stack: DevStack, *, user: str = "postgres", database: str = "costguard") -> str:
    return f"postgresql://{user}:{PASSWORD}@127.0.0.1:{stack.postgres.port}/{database}"


async def _one_line(module: str, args: list[str], env: dict[str, str]) -> str:
    code, stderr = await run_to_exit(module, env, args=args)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert PASSWORD not in stderr
    return lines[0]


@pytest.mark.parametrize(("module", "args"), POSTGRES_USERS)
async def test_a_closed_postgres_port(
    module: str, args: list[str], service_env: dict[str, str]
) -> None:
    closed = free_port()
    env = {**service_env, "DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:{closed}/db"}
    line = await _one_line(module, args, env)
    assert (
        line
        == f"costguard: DATABASE_URL: cannot connect to 127.0.0.1:{closed} (connection refused)"
    )


@pytest.mark.parametrize(("module", "args"), REDIS_USERS)
async def test_a_closed_redis_port(
    module: str, args: list[str], service_env: dict[str, str]
) -> None:
    closed = free_port()
    env = {**service_env, "REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{closed}/0"}
    line = await _one_line(module, args, env)
    assert (
        line == f"costguard: REDIS_URL: cannot connect to 127.0.0.1:{closed} (connection refused)"
    )


async def test_a_database_that_does_not_exist(stack: DevStack, service_env: dict[str, str]) -> None:
    env = {**service_env, "DATABASE_URL": _dsn(stack, database="nope")}
    line = await _one_line("costguard.telemetry", [], env)
    assert line == (
        f'costguard: DATABASE_URL: database "nope" does not exist '
        f"(at 127.0.0.1:{stack.postgres.port})"
    )


async def test_a_role_that_does_not_exist(stack: DevStack, service_env: dict[str, str]) -> None:
    env = {**service_env, "DATABASE_URL": _dsn(stack, user="nobody_here")}
    line = await _one_line("costguard.telemetry", [], env)
    assert line == (
        f'costguard: DATABASE_URL: role "nobody_here" does not exist '
        f"(at 127.0.0.1:{stack.postgres.port})"
    )


@pytest.fixture
async def password_role(stack: DevStack) -> AsyncIterator[str]:
    """A role the test Postgres authenticates by password (it trusts everyone else)."""
    conn = await asyncpg.connect(stack.postgres.dsn)
    hba = Path(await conn.fetchval("SHOW hba_file"))
    before = await asyncio.to_thread(hba.read_text)
    loaded = await conn.fetchval("SELECT pg_conf_load_time()")
    await conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'the-right-one'")
    await asyncio.to_thread(hba.write_text, f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n{before}")
    await conn.execute("SELECT pg_reload_conf()")

    async def reloaded() -> bool:
        # The postmaster reloads on a signal; sessions started after it report the new time.
        fresh = await asyncpg.connect(stack.postgres.dsn)
        try:
            return bool(await fresh.fetchval("SELECT pg_conf_load_time() > $1", loaded))
        finally:
            await fresh.close()

    try:
        await poll_until(reloaded, interval_s=0.05)
        yield ROLE
    finally:
        await asyncio.to_thread(hba.write_text, before)
        await conn.execute("SELECT pg_reload_conf()")
        await conn.execute(f"DROP ROLE {ROLE}")
        await conn.close()


async def test_a_wrong_password(
    stack: DevStack, password_role: str, service_env: dict[str, str]
) -> None:
    url = _dsn(stack, user=password_role)
    assert urlsplit(url).password == PASSWORD
    line = await _one_line("costguard.telemetry", [], {**service_env, "DATABASE_URL": url})
    assert line == (
        f'costguard: DATABASE_URL: password authentication failed for user "{password_role}" '
        f"(at 127.0.0.1:{stack.postgres.port})"
    )
