"""No input gets a 5xx: schemathesis over the OpenAPI document (positive and negative data,
Unicode strings, every declared status with its schema), and hostile bodies and query
strings sent to every route the app has, so that a new route is covered by itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route

from costguard.devstack import free_port
from costguard.gateway.app import create_app
from costguard.gateway.auth import hash_token
from costguard.gateway.config import GatewayConfig
from costguard.gateway.openapi import document
from costguard.rollup.config import RollupConfig
from costguard.rollup.server import build as build_rollup
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import build_server as build_throttle_server
from tests.processes import poll_until

TOKEN = "schema-admin-token"
AS_ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class LiveGateway:
    url: str
    app: Starlette


@pytest.fixture
async def live_gateway(
    db: asyncpg.Pool, service_env: dict[str, str], telemetry_addr: str
) -> AsyncIterator[LiveGateway]:
    """The gateway with every service behind it up, so that /readyz can be ready and a
    recalculation reaches the rollup service, and the document's example episode and podcast
    stored, so that their routes answer more than 404."""
    await db.execute(
        "INSERT INTO entity_costs "
        "(entity_type, entity_id, podcast_id, total_cost_usd, cost_by_service, event_count) "
        "VALUES ('episode', 'ep-1', 'pod-1', 0.5, '{\"openai\": \"0.5\"}', 3)"
    )
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
        "ALERT_DISPATCH_SECONDS": "3600",
    }
    port = free_port()
    app = create_app(GatewayConfig.from_env(env))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await poll_until(started, interval_s=0.02)  # uvicorn offers no start event to await
    yield LiveGateway(f"http://127.0.0.1:{port}", app)
    server.should_exit = True
    await task
    await throttle.stop()
    await rollup.server.stop()


@pytest.mark.timeout(600)
async def test_no_input_gets_a_5xx_or_a_response_off_the_schema(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    # --mode all: data that fits the schema and data that breaks it (wrong types, missing
    # fields, out-of-range numbers); the coverage phase adds each schema's boundary values.
    # status_code_conformance: every status answered is declared, with its body's schema.
    # One worker: on CPython 3.11.7 (this machine's) two threads parsing source at once can
    # trip "AST constructor recursion depth mismatch" (cpython gh-106905, fixed in 3.11.8),
    # and Hypothesis parses each filter's lambda source while schemathesis generates cases.
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("st")), "run", f"{live_gateway.url}/api/openapi.json",
        "--mode", "all",
        "--phases", "examples,coverage,fuzzing",
        "--generation-codec", "utf-8",
        "--checks", "not_a_server_error,status_code_conformance,"
                    "response_schema_conformance,content_type_conformance",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--max-examples", "25",
        "--seed", "20261201",
        "--workers", "1",
        "--report", "junit", "--report-dir", str(tmp_path),
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, text[-6000:]
    assert "passed" in text.lower()


# --- every route, by hand ---------------------------------------------------------------


def _app_routes(app: Starlette) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, the dashboard's files aside."""
    found = []
    for route in app.routes:
        if isinstance(route, Route) and route.methods:
            found += [(method, route.path) for method in sorted(route.methods - {"HEAD"})]
    return found


def _filled(path: str, value: str = "ep1") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def _query_names() -> set[str]:
    names = {"days", "limit", "from", "to", "year", "month"}
    for operations in document()["paths"].values():
        for operation in operations.values():
            names |= {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    return names


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE_BODIES = [
    b'{"apply_scope": "global", "token": ' + b"9" * 5000 + b"}",
    b'{"token": -' + b"9" * 4301 + b"}",
    _nested(5000),
    _nested(100_000),
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"token": "' + b"x" * (10 * 1024 * 1024) + b'"}',
    b'{"token": "\xff\xfe\xfd"}',
    b"\xff" * 100,
    b'{"token": NaN, "apply_scope": Infinity}',
    b'{"token": 1e99999}',
    b'{"token": "\\ud800", "apply_scope": "global"}',
    b'{"apply_scope": "user:x\\n", "daily_jobs_cap": 1}',
    b'{"apply_scope": "global", "daily_cost_usd_cap": "1e999999999"}',
    b'{"apply_scope": "global", "alert_thresholds": ["NaN", "-0", "1e-999999999"]}',
    b'{"apply_scope": "global", "daily_cpu_ms_cap": 9223372036854775808}',
    b'{"apply_scope": "glo\\u0000bal"}',
    b"null",
    b"",
]
HOSTILE_QUERY_VALUES = [
    "\u00b2", "\u0663", "\uff11\uff12", "-1", "0", "9" * 5000, "1e309", "NaN", "0001-01-01",
    "9999-12-31", "2025-02-30", "\x00", "\ud800", "%", "é" * 1000, "",
]  # fmt: skip
HOSTILE_SEGMENTS = ["ep1%0A", "%00", "é" * 70, "x" * 5000, "..%2F..%2Fetc", "%ED%A0%80"]


def _assert_answered(reply: httpx.Response, what: object) -> None:
    assert reply.status_code < 500, (what, reply.status_code, reply.text[:300])
    if reply.status_code >= 400:
        assert isinstance(reply.json()["error"], str), what


@pytest.mark.timeout(300)
async def test_hostile_bodies_and_queries_to_every_route_get_a_json_4xx_never_a_5xx(
    live_gateway: LiveGateway,
) -> None:
    routes = _app_routes(live_gateway.app)
    assert len(routes) >= 17
    # The document describes every route the app serves but the dashboard's (so schemathesis
    # covers them too).
    described = document()["paths"]
    for method, path in routes:
        if not path.startswith("/admin/cost"):
            assert method.lower() in described.get(path, {}), (method, path)
    transport = httpx.ASGITransport(app=live_gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for method, path in routes:
            for body in HOSTILE_BODIES:
                for content_type in ("application/json", "text/plain"):
                    reply = await client.request(
                        method,
                        _filled(path),
                        content=body,
                        headers={**AS_ADMIN, "Content-Type": content_type},
                    )
                    _assert_answered(reply, (method, path, body[:40]))
            for name in sorted(_query_names()):
                for value in HOSTILE_QUERY_VALUES:
                    # Encoded by hand: httpx refuses to encode a lone surrogate itself.
                    raw = quote(value.encode("utf-8", "surrogatepass"), safe="")
                    reply = await client.request(
                        method, f"{_filled(path)}?{name}={raw}", headers=AS_ADMIN
                    )
                    _assert_answered(reply, (method, path, name, value[:40]))
            if "{" in path:
                for segment in HOSTILE_SEGMENTS:
                    reply = await client.request(method, _filled(path, segment), headers=AS_ADMIN)
                    _assert_answered(reply, (method, path, segment[:40]))


def _nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


# JSON values, with the hostile ones among the leaves: integers past int()'s 4,300 digits,
# infinities (json.dumps writes them as Infinity), unpaired surrogates (written as \ud800
# escapes), arrays nested past the limit (as deep as json.dumps will write here).
_HUGE = "<a 5,000-digit integer>"  # str() cannot write one: replaced in the encoded body
_HOSTILE_LEAVES = st.sampled_from([_HUGE, "\ud800", "x\udfff"]) | st.integers(30, 500).map(
    _nested_lists
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=40)
    | _HOSTILE_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=12,
)
_BUDGET_KEYS = ["apply_scope", "daily_cpu_ms_cap", "daily_jobs_cap", "llm_input_tokens_cap",
                "llm_output_tokens_cap", "daily_cost_usd_cap", "alert_thresholds", "enabled",
                "token"]  # fmt: skip


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(st.sampled_from(_BUDGET_KEYS), _JSON, max_size=6) | _JSON,
    query=st.dictionaries(st.sampled_from(sorted(_query_names())), st.text(max_size=30)),
)
async def test_any_json_body_and_query_to_every_route_is_never_a_5xx(
    live_gateway: LiveGateway, body: Any, query: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=live_gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for method, path in _app_routes(live_gateway.app):
            reply = await client.request(
                method,
                _filled(path),
                params=query,
                content=json.dumps(body).replace(json.dumps(_HUGE), "-" + "9" * 5000).encode(),
                headers={**AS_ADMIN, "Content-Type": "application/json"},
            )
            _assert_answered(reply, (method, path, body, query))
