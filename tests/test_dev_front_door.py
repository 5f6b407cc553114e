"""``make dev``'s runner on a fresh folder: four processes up, SDK event stored, Ctrl-C, again."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from grpc import aio

from costguard.common.health import health_status
from costguard.sdk import TelemetryClient, UserContext, job_telemetry


async def _start(root: Path) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "costguard.devstack.run",
        "--root",
        str(root),
        "--gateway-port",
        "0",
        env={**os.environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    banner: list[str] = []
    async with asyncio.timeout(120):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "the runner exited before it was ready:\n" + "".join(banner)
            banner.append(line)
            if line.startswith("ready."):
                break
    text = "".join(banner)
    found = {
        "gateway": re.search(r"gateway\s+(http://\S+)", text),
        "token": re.search(r"admin token (\S+)", text),
        "telemetry": re.search(r"telemetry\s+(127\.0\.0\.1:\d+)", text),
        "throttle": re.search(r"throttle\s+(127\.0\.0\.1:\d+)", text),
        "rollup": re.search(r"rollup\s+(127\.0\.0\.1:\d+)", text),
        "postgres": re.search(r"postgres\s+(postgresql://\S+)", text),
        "service_token": re.search(r"COSTGUARD_SERVICE_TOKEN=(\S+)", text),
    }
    missing = [key for key, match in found.items() if match is None]
    assert not missing, f"banner lacks {missing}:\n{text}"
    return process, {key: match.group(1) for key, match in found.items() if match}


async def _stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert process.stdout is not None
    async with asyncio.timeout(60):
        rest = (await process.stdout.read()).decode()
        assert await process.wait() == 0
    return rest


def _refuses(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.fixture
def dev_root() -> Iterator[Path]:
    # Under the repo's git-ignored .dev/ like `make dev` itself (not pytest's private
    # tmp folder, which the unprivileged Postgres user could not reach).
    root = Path(__file__).resolve().parents[1] / ".dev" / f"test-dev-{uuid.uuid4().hex[:8]}"
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def test_make_dev_runs_everything_and_stops_on_ctrl_c(dev_root: Path) -> None:
    process, info = await _start(dev_root)
    try:
        for name in ("telemetry", "throttle", "rollup"):
            async with aio.insecure_channel(info[name]) as channel:
                assert await health_status(channel) == "SERVING", name
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"{info['gateway']}/readyz")
            summary = await http.get(
                f"{info['gateway']}/api/admin/cost/summary?days=7",
                headers={"Authorization": f"Bearer {info['token']}"},
            )
        assert ready.json()["ready"] is True
        assert summary.status_code == 200

        client = TelemetryClient(info["telemetry"], token=info["service_token"])
        async with job_telemetry("dev-smoke", UserContext("dev-user", "free"), client=client):
            pass
        await client.close()
        conn = await asyncpg.connect(info["postgres"])
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM telemetry_job_events WHERE job_name = 'dev-smoke'"
            )
        finally:
            await conn.close()
        assert count == 1
    finally:
        rest = await _stop(process)
    assert "stopped" in rest
    assert all(_refuses(info[name]) for name in ("telemetry", "throttle", "rollup"))
    assert _refuses(info["gateway"].removeprefix("http://"))

    # Running it again works, on the same data.
    again, info2 = await _start(dev_root)
    try:
        assert info2["token"] == info["token"]
        conn = await asyncpg.connect(info2["postgres"])
        try:
            smoke = "SELECT count(*) FROM telemetry_job_events WHERE job_name = 'dev-smoke'"
            assert await conn.fetchval(smoke) == 1
            assert await conn.fetchval("SELECT count(*) FROM cost_global_daily") >= 30  # demo data
        finally:
            await conn.close()
    finally:
        await _stop(again)
