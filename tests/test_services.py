"""Each service runs for real: config from the environment, health, reflection, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
import pytest
from grpc import aio
from grpc_reflection.v1alpha import reflection_pb2

from costguard.common.health import health_status
from costguard.devstack import free_port
from tests.processes import ServiceProcess, run_to_exit

GRPC_SERVICES = {
    "costguard.telemetry": "costguard.v1.TelemetryService",
    "costguard.throttle": "costguard.v1.ThrottleService",
    "costguard.rollup": "costguard.v1.RollupService",
}
ALL_MODULES = [*GRPC_SERVICES, "costguard.gateway"]
# What runs each module's server: the rollup's CLI also has one-shot commands.
SERVE_ARGS = {"costguard.rollup": ["serve"]}


async def _reflected_services(channel: aio.Channel) -> set[str]:
    call = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    stream = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    async for reply in stream:
        return {s.name for s in reply.list_services_response.service}
    return set()


@pytest.mark.parametrize("module", sorted(GRPC_SERVICES))
async def test_grpc_service_serves_health_and_reflection_then_drains_on_sigterm(
    module: str, service_env: dict[str, str]
) -> None:
    port = free_port()
    service = await ServiceProcess(
        module, {**service_env, "GRPC_LISTEN": f"127.0.0.1:{port}"}, SERVE_ARGS.get(module, [])
    ).start()
    try:
        serving = await service.wait_for_log("serving")
        assert serving["port"] == port
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await health_status(channel) == "SERVING"
            assert await health_status(channel, GRPC_SERVICES[module]) == "SERVING"
            assert GRPC_SERVICES[module] in await _reflected_services(channel)
        assert await service.terminate() == 0
    finally:
        await service.kill()
    messages = [entry["msg"] for entry in service.logs]
    # Work already under way (a counter rebuild at start) may still log while draining.
    assert messages[-1] == "stopped"
    assert "shutting down" in messages[messages.index("serving") :]


async def test_gateway_serves_healthz_then_stops_on_sigterm(service_env: dict[str, str]) -> None:
    port = free_port()
    gateway = await ServiceProcess(
        "costguard.gateway", {**service_env, "GATEWAY_LISTEN": f"127.0.0.1:{port}"}
    ).start()
    try:
        await gateway.wait_for_log("Application startup complete.")
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{port}/healthz")
        assert reply.json() == {"status": "ok"}
        # uvicorn drains, then re-raises the signal it caught, so the exit status says SIGTERM.
        assert await gateway.terminate() == -signal.SIGTERM
    finally:
        await gateway.kill()
    assert "Application shutdown complete." in [entry["msg"] for entry in gateway.logs]


_BAD = [
    ("DATABASE_URL", "nonsense", "expected postgresql://"),
    ("REDIS_URL", "", "is required but not set"),
    ("COSTGUARD_TIMEZONE", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("LOG_LEVEL", "LOUD", "expected DEBUG, INFO, WARNING or ERROR"),
]
BAD_CONFIG = [
    (module, *case)
    for module in ALL_MODULES
    for case in _BAD
    if not (module == "costguard.rollup" and case[0] == "REDIS_URL")  # the rollup needs no Redis
] + [("costguard.rollup", "ROLLUP_NIGHTLY_AT", "half past two", "expected HH:MM")]
# Reachable from other machines: only with credentials (none are set here).
BAD_CONFIG += [
    (module, "GRPC_LISTEN", "0.0.0.0:0", "COSTGUARD_SERVICE_TOKEN must be set")
    for module in GRPC_SERVICES
] + [
    (
        "costguard.gateway",
        "GATEWAY_LISTEN",
        "0.0.0.0:0",
        "COSTGUARD_ADMIN_TOKENS and GATEWAY_SESSION_SECRET must be set",
    )
]
NO_CREDENTIALS = {
    "COSTGUARD_SERVICE_TOKEN": "",
    "COSTGUARD_ADMIN_TOKENS": "",
    "GATEWAY_SESSION_SECRET": "",
}


@pytest.mark.parametrize(("module", "variable", "value", "problem"), BAD_CONFIG)
async def test_bad_configuration_stops_start_up_with_one_line_naming_the_variable(
    module: str, variable: str, value: str, problem: str, service_env: dict[str, str]
) -> None:
    if variable == "REDIS_URL" and module == "costguard.rollup":
        variable, value, problem = (
            "ROLLUP_NIGHTLY_AT",
            "half past two",
            "expected HH:MM",
        )  # no Redis
    code, stderr = await run_to_exit(
        module, {**service_env, **NO_CREDENTIALS, variable: value}, args=SERVE_ARGS.get(module, [])
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"costguard: configuration error: {variable}: ")
    assert problem in lines[0]


async def test_a_password_in_a_bad_url_is_never_echoed(service_env: dict[str, str]) -> None:
    code, stderr = await run_to_exit(
        "costguard.telemetry", {**service_env, "DATABASE_URL": "mysql://u:hunter2@db/x"}
    )
    assert code == 2
    assert "hunter2" not in stderr
    assert "***" in stderr


async def _run(module: str, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):  # a module that serves instead never exits
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    "module", ["costguard.telemetry", "costguard.throttle", "costguard.gateway"]
)
async def test_help_says_where_the_settings_are_and_serves_nothing(
    module: str, service_env: dict[str, str]
) -> None:
    code, out, err = await _run(module, "--help", env=service_env)
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: python -m {module}\n")
    words = " ".join(out.split())
    assert "environment variables" in words
    assert "Configuration table of costguard's README.md" in words

    code, _, err = await _run(module, "serve", env=service_env)
    assert code == 2
    assert err.rstrip().endswith(f"python -m {module}: unexpected arguments: serve")


async def test_the_rollup_cli_needs_a_command_and_help_serves_nothing(
    service_env: dict[str, str],
) -> None:
    code, out, err = await _run("costguard.rollup", env=service_env)
    assert (code, out) == (2, "")
    assert err.startswith("usage: python -m costguard.rollup")
    assert all(command in err for command in ("serve", "rollup", "retention"))

    for args in (["--help"], ["serve", "--help"], ["rollup", "--help"]):
        code, out, err = await _run("costguard.rollup", *args, env=service_env)
        assert (code, err) == (0, ""), args
        assert out.startswith("usage: python -m costguard.rollup"), args
        assert "Configuration table of costguard's README.md" in " ".join(out.split()), args
