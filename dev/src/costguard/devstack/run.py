"""``make dev``: the whole system on this machine, with a private Postgres and Redis.

Takes the root's lock (one runner per root: a second one says where the first serves and
leaves), starts Postgres and Redis (data under ``.dev/``), applies migrations, starts
telemetry, throttle, rollup and the gateway as child processes, waits until each answers
its health check and the gateway's ``/readyz`` says ready, seeds demo data, and prints the
gateway URL and an admin token. Ctrl-C (or SIGTERM) stops everything it started; running
it again reuses the data, the tokens and the ports (``.dev/ports.json``).

    python -m costguard.devstack.run [--root .dev] [--gateway-port 8080]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import grpc
import httpx
from grpc import aio

from costguard.common.auth import token_metadata
from costguard.common.counters import LiveCounters
from costguard.common.db import create_pool
from costguard.common.health import health_status
from costguard.common.migrate import migrate_up
from costguard.common.pricing import AwsPrices
from costguard.common.rebuild import CounterReconciler
from costguard.common.redis import create_redis
from costguard.devstack.seed import DAYS, DOMAINS, USERS, seed_demo
from costguard.devstack.stack import DevStack
from costguard.devstack.state import SERVICES, AlreadyRunning, RunLock, choose_ports
from costguard.v1 import rollup_pb2, rollup_pb2_grpc, throttle_pb2, throttle_pb2_grpc

_READY_TIMEOUT_S = 60.0


@dataclass
class Children:
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        """``command``: the module to run with ``python -m`` and its arguments."""
        log = (log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", *command], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def exited(self) -> str | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name
        return None

    def stop(self, timeout_s: float = 15.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _secret(root: Path, name: str) -> str:
    """A dev secret kept under ``.dev``, so a signed-in dashboard and a configured app
    keep working across restarts."""
    path = root / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


async def _wait_healthy(name: str, target: str, children: Children) -> None:
    async with aio.insecure_channel(target) as channel:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT_S
        while loop.time() < deadline:
            if children.exited() == name:
                raise RuntimeError(f"{name} exited during start-up; see its log")
            try:
                status = await health_status(channel, timeout_s=1.0)
            except grpc.RpcError:
                status = "not listening yet"
            if status == "SERVING":
                return
            # The process gives no readiness signal but its health check: poll it.
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{name} did not report SERVING within {_READY_TIMEOUT_S:.0f}s")


async def _wait_ready(url: str, children: Children) -> None:
    """Until ``/readyz`` says ready: the gateway reaches Postgres, Redis and the services."""
    async with httpx.AsyncClient() as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT_S
        while loop.time() < deadline:
            if children.exited() == "gateway":
                raise RuntimeError("gateway exited during start-up; see its log")
            try:
                reply = await client.get(url, timeout=2.0)
                if reply.status_code == 200 and reply.json().get("ready") is True:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            # Like the health checks: readiness is only told when asked.
            await asyncio.sleep(0.1)
    raise TimeoutError(f"gateway did not answer ready at {url}")


def service_env(stack: DevStack, ports: dict[str, int], service_token: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": stack.postgres.dsn,
        "REDIS_URL": stack.redis.url,
        "COSTGUARD_SERVICE_TOKEN": service_token,
        "TELEMETRY_ADDR": f"127.0.0.1:{ports['telemetry']}",
        "THROTTLE_ADDR": f"127.0.0.1:{ports['throttle']}",
        "ROLLUP_ADDR": f"127.0.0.1:{ports['rollup']}",
    }


async def _migrate(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate_up(conn)
    finally:
        await conn.close()


async def run(stack: DevStack, root: Path, ports: dict[str, int], notes: list[str]) -> None:
    token, service_token = _secret(root, "admin-token"), _secret(root, "service-token")
    logs = root / "logs"
    children = Children()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        applied = await _migrate(stack.postgres.dsn)
        print(f"migrations: {', '.join(applied) or 'up to date'}", flush=True)
        env = service_env(stack, ports, service_token)
        for name in SERVICES:
            # Each its own metrics port: on one machine the default 9464 fits only one.
            own = {
                "GRPC_LISTEN": f"127.0.0.1:{ports[name]}",
                "METRICS_PORT": str(ports[f"{name}_metrics"]),
            }
            if name == "telemetry":
                own["OTLP_HTTP_PORT"] = str(ports["otlp_http"])
            command = [f"costguard.{name}", *(["serve"] if name == "rollup" else [])]
            children.start(name, command, {**env, **own}, logs)
        digest = hashlib.sha256(token.encode()).hexdigest()
        gateway_env = {
            **env,
            "GATEWAY_LISTEN": f"127.0.0.1:{ports['gateway']}",
            "COSTGUARD_ADMIN_TOKENS": f"dev:admin:{digest}",
        }
        children.start("gateway", ["costguard.gateway"], gateway_env, logs)
        for name in SERVICES:
            await _wait_healthy(name, f"127.0.0.1:{ports[name]}", children)
        url = f"http://127.0.0.1:{ports['gateway']}"
        await _wait_ready(f"{url}/readyz", children)
        await _seed(
            stack, f"127.0.0.1:{ports['rollup']}", f"127.0.0.1:{ports['throttle']}", service_token
        )
        _print_banner(
            url=url,
            token=token,
            service_token=service_token,
            stack=stack,
            ports={name: ports[name] for name in SERVICES},
            otlp_http=f"http://127.0.0.1:{ports['otlp_http']}",
            notes=notes,
            logs=logs,
        )
        while not stop.is_set():
            if (dead := children.exited()) is not None:
                print(f"{dead} exited; stopping (see {logs / (dead + '.log')})", flush=True)
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                continue
    finally:
        print("stopping...", flush=True)
        children.stop()


async def _seed(stack: DevStack, rollup_addr: str, throttle_addr: str, service_token: str) -> None:
    """Demo data on a fresh database: rolled up (and so priced) through the rollup service,
    then today's live counters rebuilt (the demo rows went to Postgres directly, not via
    telemetry), then today's throttle checks asked of the real throttle."""
    conn = await asyncpg.connect(stack.postgres.dsn)
    try:
        seeded = await seed_demo(conn)
    finally:
        await conn.close()
    if not seeded:
        return
    today = datetime.now(UTC).date()
    async with aio.insecure_channel(rollup_addr) as channel:
        reply = await rollup_pb2_grpc.RollupServiceStub(channel).RollupRange(
            rollup_pb2.RollupRangeRequest(
                from_date=(today - timedelta(days=DAYS + 1)).isoformat(), to_date=today.isoformat()
            ),
            metadata=token_metadata(service_token),
            timeout=300,
        )
    # After the rollup, which priced the demo rows: the counters add up stored prices.
    pool = await create_pool(stack.postgres.dsn, max_size=2)
    redis = create_redis(stack.redis.url)
    try:
        rebuilder = CounterReconciler(
            pool,
            LiveCounters(redis),
            timezone=ZoneInfo("UTC"),
            aws=AwsPrices.from_env(os.environ),
            interval_s=60,
        )
        await rebuilder.rebuild_today(wait=True)
    finally:
        await redis.aclose()
        await pool.close()
    asked = await _ask_throttle(throttle_addr, service_token)
    print(
        f"demo data: {DAYS} days seeded and rolled up ({len(reply.dates)} dates), "
        f"{asked} throttle checks asked",
        flush=True,
    )


# The CPU each demo user's check estimates, in turn: most jobs are small, a few would take
# the free tier's daily CPU cap past its defer point or over it.
_DEMO_CPU_MS = (20_000, 60_000, 250_000, 900_000, 2_500_000)


async def _ask_throttle(throttle_addr: str, service_token: str) -> int:
    """Each demo user's next jobs, as dry-run checks (nothing reserved) against today's
    counters: the throttle counts its real decisions, which the dashboard then shows."""
    requests = [
        throttle_pb2.CheckRequest(
            user_id=user,
            tier=tier,
            domain=DOMAINS[(i + j) % len(DOMAINS)],
            est_cpu_ms=_DEMO_CPU_MS[(i + j) % len(_DEMO_CPU_MS)],
            est_input_tokens=2_000,
            est_output_tokens=400,
            llm_model="gpt-4o",
            reserve=False,
        )
        for i, (user, tier) in enumerate(USERS)
        for j in range(3)
    ]
    async with aio.insecure_channel(throttle_addr) as channel:
        stub = throttle_pb2_grpc.ThrottleServiceStub(channel)
        for request in requests:
            await stub.Check(request, metadata=token_metadata(service_token), timeout=10)
    return len(requests)


def _print_banner(
    *,
    url: str,
    token: str,
    service_token: str,
    stack: DevStack,
    ports: dict[str, int],
    otlp_http: str,
    notes: list[str],
    logs: Path,
) -> None:
    lines = [
        "",
        "costguard is running",
        f"  gateway     {url}   (dashboard: {url}/admin/cost)",
        f"  admin token {token}",
        f"  try         curl -H 'Authorization: Bearer {token}' \\\n"
        f"                   '{url}/api/admin/cost/summary?days=7'",
        *(f"  {name:<11} 127.0.0.1:{port} (gRPC)" for name, port in ports.items()),
        f"  otlp-http   {otlp_http}/v1/traces",
        f"  otlp-grpc   127.0.0.1:{ports['telemetry']}",
        f"  postgres    {stack.postgres.dsn}",
        f"  redis       {stack.redis.url}",
        f"  logs        {logs}/",
        "apps (SDK):",
        f"  export COSTGUARD_TELEMETRY_ADDR=127.0.0.1:{ports['telemetry']}",
        f"  export COSTGUARD_THROTTLE_ADDR=127.0.0.1:{ports['throttle']}",
        f"  export COSTGUARD_SERVICE_TOKEN={service_token}",
        "apps (OpenTelemetry GenAI spans, OTLP/HTTP):",
        f"  export OTEL_EXPORTER_OTLP_ENDPOINT={otlp_http}",
        f"  export OTEL_EXPORTER_OTLP_HEADERS='Authorization=Bearer {service_token}'",
        *(f"note: {note} (kept in {logs.parent / 'ports.json'} for next time)" for note in notes),
        "ready. Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


def _gateway_port(arg: int | None) -> int | None:
    if arg is not None:
        return arg
    env = os.environ.get("COSTGUARD_DEV_PORT", "").strip()
    return int(env) if env else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=Path(".dev"))
    parser.add_argument(
        "--gateway-port",
        type=int,
        help="the gateway's port (default: last run's, else 8080; 0: any free one, this time)",
    )
    args = parser.parse_args()
    root: Path = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    lock = RunLock(root)
    try:
        lock.acquire()
    except AlreadyRunning as running:
        # Before anything else: the running stack's Postgres, Redis and data stay untouched.
        print(
            f"costguard dev is {running} for {root}; use that one, or stop it (Ctrl-C "
            "where it runs) before starting another",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    try:
        # Only the lock's holder may do this: a killed run's Postgres would keep its port.
        DevStack(root / "stack").postgres.stop_leftover()
        ports, notes = choose_ports(root, _gateway_port(args.gateway_port))
        lock.announce(f"http://127.0.0.1:{ports['gateway']}")
        (root / "logs").mkdir(exist_ok=True)
        stack = DevStack(
            root / "stack", durable=True, postgres_port=ports["postgres"], redis_port=ports["redis"]
        ).start()
        try:
            asyncio.run(run(stack, root, ports, notes))
        finally:
            stack.stop()
            print("stopped", flush=True)
    finally:
        lock.release()


if __name__ == "__main__":
    main()
