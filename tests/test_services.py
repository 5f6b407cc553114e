"""Each service runs for real: config from the environment, health, reflection, SIGTERM."""

from __future__ import annotations

import signal

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
        module, {**service_env, "GRPC_LISTEN": f"127.0.0.1:{port}"}
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
    code, stderr = await run_to_exit(module, {**service_env, variable: value})
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
