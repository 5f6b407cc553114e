"""``make dev``'s runner on a fresh folder: four processes up, SDK event stored, a second
runner turned away, Ctrl-C, again on the same addresses."""

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
from redis.asyncio import Redis

from costguard.common.health import health_status
from costguard.devstack import LocalPostgres, free_port
from costguard.devstack.state import PORTS, AlreadyRunning, RunLock, choose_ports, port_is_free
from costguard.sdk import TelemetryClient, UserContext, job_telemetry

ADDRESSES = ("gateway", "telemetry", "throttle", "rollup", "otlp_http", "postgres", "redis")


async def _runner(root: Path, *args: str) -> asyncio.subprocess.Process:
    # The port the developer's shell may ask for is not this test's.
    env = {k: v for k, v in os.environ.items() if k != "COSTGUARD_DEV_PORT"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "costguard.devstack.run", "--root", str(root), *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def _start(root: Path, *args: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    process = await _runner(root, *args)
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
        "otlp_http": re.search(r"^  otlp-http\s+(http://127\.0\.0\.1:\d+/v1/traces)$", text, re.M),
        "otlp_grpc": re.search(r"^  otlp-grpc\s+(127\.0\.0\.1:\d+)$", text, re.M),
        "postgres": re.search(r"postgres\s+(postgresql://\S+)", text),
        "redis": re.search(r"redis\s+(redis://\S+)", text),
        "service_token": re.search(r"COSTGUARD_SERVICE_TOKEN=(\S+)", text),
    }
    missing = [key for key, match in found.items() if match is None]
    assert not missing, f"banner lacks {missing}:\n{text}"
    # Only a run that seeded the demo asks the throttle its demo checks.
    found["checks"] = re.search(r"(\d+) throttle checks asked", text)
    return process, {key: match.group(1) for key, match in found.items() if match}


async def _run_to_exit(root: Path, *args: str) -> tuple[int, str]:
    process = await _runner(root, *args)
    try:
        async with asyncio.timeout(60):  # a runner that starts a stack instead never exits
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode()


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


# Three runners, one of them seeding 30 days, on a 2-core machine shared with other runs.
@pytest.mark.timeout(300)
async def test_make_dev_runs_everything_and_stops_on_ctrl_c(dev_root: Path) -> None:
    process, info = await _start(dev_root, "--gateway-port", str(free_port()))
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
            # OTLP: gRPC on the telemetry port, HTTP on a port of its own, the token required.
            spans = await http.post(
                info["otlp_http"],
                content=b"",  # an ExportTraceServiceRequest without spans
                headers={
                    "Content-Type": "application/x-protobuf",
                    "Authorization": f"Bearer {info['service_token']}",
                },
            )
        assert ready.json()["ready"] is True  # "ready." waited for it
        assert summary.status_code == 200
        assert spans.status_code == 200
        assert info["otlp_grpc"] == info["telemetry"]

        client = TelemetryClient(info["telemetry"], token=info["service_token"])
        async with job_telemetry("dev-smoke", UserContext("dev-user", "free"), client=client):
            pass
        await client.close()
        conn = await asyncpg.connect(info["postgres"])
        redis = Redis.from_url(info["redis"])
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM telemetry_job_events WHERE job_name = 'dev-smoke'"
            )
            assert count == 1

            # A second runner on the same folder leaves, and the first one's servers with it.
            started = await conn.fetchval("SELECT pg_postmaster_start_time()")
            code, output = await _run_to_exit(dev_root, "--gateway-port", "0")
            assert code != 0
            assert f"already running at {info['gateway']} (pid {process.pid})" in output
            assert "migrations" not in output
            # The very connections opened before it still work: nothing was restarted.
            assert await conn.fetchval("SELECT pg_postmaster_start_time()") == started
            assert await redis.ping()
        finally:
            await redis.aclose()
            await conn.close()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{info['gateway']}/readyz")).json()["ready"] is True
    finally:
        rest = await _stop(process)
    assert "stopped" in rest
    assert all(_refuses(info[name]) for name in ("telemetry", "throttle", "rollup"))
    assert _refuses(info["gateway"].removeprefix("http://"))
    assert _refuses(info["otlp_http"].removeprefix("http://").removesuffix("/v1/traces"))

    # Running it again works, on the same data, at the same addresses (the gateway's port
    # was asked for once, and is remembered).
    again, info2 = await _start(dev_root)
    try:
        assert {name: info2[name] for name in ADDRESSES} == {name: info[name] for name in ADDRESSES}
        assert info2["token"] == info["token"]
        assert info2["service_token"] == info["service_token"]
        conn = await asyncpg.connect(info2["postgres"])
        try:
            smoke = "SELECT count(*) FROM telemetry_job_events WHERE job_name = 'dev-smoke'"
            assert await conn.fetchval(smoke) == 1
            assert await conn.fetchval("SELECT count(*) FROM cost_global_daily") >= 30  # demo data
            # The demo's checks were the real throttle's decisions, flushed when it stopped.
            asked = int(info["checks"])
            assert asked > 0
            for table in ("throttle_decisions_daily", "throttle_user_decisions_daily"):
                assert await conn.fetchval(f"SELECT sum(decisions) FROM {table}") == asked
            assert "checks" not in info2  # the data was there: nothing seeded again
        finally:
            await conn.close()
    finally:
        await _stop(again)


def test_ports_are_remembered_and_a_taken_one_is_replaced(tmp_path: Path) -> None:
    gateway = free_port()
    first, notes = choose_ports(tmp_path, gateway)
    assert notes == []
    assert first["gateway"] == gateway
    assert set(first) == set(PORTS)
    assert len(set(first.values())) == len(PORTS)

    assert choose_ports(tmp_path, None) == (first, [])
    with socket.socket() as squatter:  # someone else took the throttle's port meanwhile
        squatter.bind(("127.0.0.1", first["throttle"]))
        squatter.listen()
        second, notes = choose_ports(tmp_path, None)
    moved = second["throttle"]
    assert moved != first["throttle"]
    assert {**second, "throttle": first["throttle"]} == first
    assert notes == [f"throttle port {first['throttle']} is taken; using {moved} instead"]
    assert choose_ports(tmp_path, None) == (second, [])  # the new one is kept

    # --gateway-port 0: any free port this once; the remembered one is kept for next time.
    ephemeral, notes = choose_ports(tmp_path, 0)
    assert notes == []
    assert {**ephemeral, "gateway": gateway} == second
    assert choose_ports(tmp_path, None) == (second, [])


def test_one_runner_per_root(tmp_path: Path) -> None:
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(AlreadyRunning) as running:
            second.acquire()
        assert (running.value.pid, running.value.url) == (os.getpid(), None)
        first.announce("http://127.0.0.1:8080")
        with pytest.raises(AlreadyRunning) as running:
            second.acquire()
        assert str(running.value) == f"already running at http://127.0.0.1:8080 (pid {os.getpid()})"
    finally:
        first.release()
    second.acquire()  # released: the next runner may start
    second.release()


async def test_a_killed_runs_postgres_is_stopped_so_its_port_is_free_again(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("leftover")
    root.chmod(0o755)  # Postgres runs as an unprivileged user and must reach its folder
    killed_run = LocalPostgres(root / "pg", durable=False)
    await asyncio.to_thread(killed_run.start)  # and never stopped: its runner died
    try:
        assert not port_is_free(killed_run.port)
        await asyncio.to_thread(LocalPostgres(root / "pg", durable=False).stop_leftover)
        assert port_is_free(killed_run.port)
    finally:
        await asyncio.to_thread(killed_run.stop)  # nothing left to stop, unless it failed
