"""Schemathesis over the gateway's OpenAPI document: no 5xx, no response off its schema."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import uvicorn

from costguard.devstack import free_port
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.rollup.config import RollupConfig
from costguard.rollup.server import build as build_rollup
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import build_server as build_throttle_server
from tests.processes import poll_until

TOKEN = "schema-admin-token"


@pytest.fixture
async def live_gateway(
    db: asyncpg.Pool, service_env: dict[str, str], telemetry_addr: str
) -> AsyncIterator[str]:
    """The gateway with every service behind it up, so that /readyz can be ready."""
    rollup = await build_rollup(RollupConfig.from_env({**service_env, "ROLLUP_SCHEDULER": "false"}))
    rollup_port = await rollup.server.start()
    throttle = await build_throttle_server(ThrottleConfig.from_env(service_env))
    throttle_port = await throttle.start()
    env = {
        **service_env,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(TOKEN)}",
        "ROLLUP_ADDR": f"127.0.0.1:{rollup_port}",
        "THROTTLE_ADDR": f"127.0.0.1:{throttle_port}",
        "TELEMETRY_ADDR": telemetry_addr,
    }
    port = free_port()
    config = uvicorn.Config(
        create_app(GatewayConfig.from_env(env)), host="127.0.0.1", port=port, log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await poll_until(started, interval_s=0.02)  # uvicorn offers no start event to await
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
    await throttle.stop()
    await rollup.server.stop()


@pytest.mark.timeout(600)
async def test_no_input_gets_a_5xx_or_a_response_off_the_schema(
    live_gateway: str, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("st")), "run", f"{live_gateway}/api/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--max-examples", "30",
        "--report", "junit", "--report-dir", str(tmp_path),
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, text[-4000:]
    assert "passed" in text.lower()
