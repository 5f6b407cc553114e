"""``make e2e``: build the images, run the compose stack and the Kubernetes manifests for
real with podman, and check them from the host as an operator and an application would.

    python -m costguard.devstack.e2e            # everything; exits 1 on the first failure
    python -m costguard.devstack.e2e --keep     # leave the compose stack running at the end
    python -m costguard.devstack.e2e --only compose   # or --only kube

Stand-in base images are made from Debian's packages (``costguard.devstack.standins``);
``deploy/Dockerfile`` and ``deploy/compose/docker-compose.yml`` are used unchanged, with
``deploy/e2e/compose.override.yml`` on top (host networking on loopback, this machine's
engine). Every step is timed; the timeline is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import sys
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import uuid4
from zoneinfo import ZoneInfo

import asyncpg
import grpc
import httpx
from grpc import aio
from playwright.async_api import Error as BrowserError
from playwright.async_api import async_playwright

from costguard.common.days import today
from costguard.devstack.browser import CHROMIUM, CHROMIUM_ARGS
from costguard.devstack.compose import COMPOSE_FILE, Compose
from costguard.devstack.containers import (
    CONTAINERS_CONF,
    E2E_DIR,
    WORK_DIR,
    CommandFailed,
    Timeline,
    engine_env,
    poll,
    run,
    wait_until,
)
from costguard.devstack.kube import IMAGES, kube_checks
from costguard.devstack.standins import STAND_INS, SUITES, base_image, make_stand_ins
from costguard.sdk import (
    CostEvent,
    LlmCall,
    TelemetryClient,
    UserContext,
    job_telemetry,
    record_llm_event,
    track_cost_events,
)
from costguard.v1 import rollup_pb2, rollup_pb2_grpc, throttle_pb2, throttle_pb2_grpc

OVERRIDE = E2E_DIR / "compose.override.yml"
ENV_FILE = WORK_DIR / "compose.env"  # the override's env_file (../../.dev/e2e/compose.env)
PROJECT = "costguard-e2e"
GATEWAY = "http://127.0.0.1:8080"
TELEMETRY, THROTTLE, ROLLUP = "127.0.0.1:50051", "127.0.0.1:50052", "127.0.0.1:50053"
# Every port the stack binds on the host's loopback (services, their metrics, OTLP/HTTP).
PORTS = (5432, 6379, 50051, 50052, 50053, 8080, 9464, 9465, 9466, 9467, 4318)
TOOLS = ("podman", "runc", "debootstrap", "podman-compose", "tar")
TIMEZONE = ZoneInfo("UTC")
RAW_TABLES = ("telemetry_job_events", "telemetry_llm_events", "cost_events")


class CheckFailed(AssertionError):
    """What the stack did differs from what it should have done."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass(frozen=True)
class Settings:
    """The stack's secrets, made fresh for each run, and its webhook receiver's address."""

    webhook_url: str
    postgres_password: str = field(default_factory=lambda: secrets.token_hex(16))
    service_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def env_file(self) -> str:
        admin_hash = hashlib.sha256(self.admin_token.encode()).hexdigest()
        lines = {
            "POSTGRES_PASSWORD": self.postgres_password,
            "COSTGUARD_SERVICE_TOKEN": self.service_token,
            "COSTGUARD_ADMIN_TOKENS": f"e2e:admin:{admin_hash}",
            "GATEWAY_SESSION_SECRET": self.session_secret,
            "ALERT_WEBHOOK_URL": self.webhook_url,
            "ALERT_WEBHOOK_SECRET": self.webhook_secret,
            "COSTGUARD_TIMEZONE": str(TIMEZONE),
            "LOG_LEVEL": "INFO",
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    @property
    def database_url(self) -> str:
        return f"postgresql://costguard:{self.postgres_password}@127.0.0.1:5432/costguard"

    @property
    def grpc_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.service_token}"),)


class WebhookReceiver:
    """A local HTTP endpoint that keeps every request it gets (the alert webhook's target)."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/alerts"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.put_nowait((headers, body))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def preflight() -> None:
    path = engine_env()["PATH"]
    missing = [tool for tool in TOOLS if shutil.which(tool, path=path) is None]
    if missing:
        raise CommandFailed(f"missing {', '.join(missing)}: `make e2e` installs them as root")
    taken = []
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(port)
    if taken:
        raise CommandFailed(
            f"ports {taken} on 127.0.0.1 are in use: the stack binds them (host networking); "
            "stop what listens there (`make dev`? another stack? `make down`)"
        )


@dataclass
class Run:
    """One end-to-end run against the compose stack."""

    settings: Settings
    receiver: WebhookReceiver
    timeline: Timeline
    compose: Compose
    user: str = field(default_factory=lambda: f"e2e-{uuid4().hex[:8]}")

    @asynccontextmanager
    async def database(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await asyncpg.connect(self.settings.database_url)
        try:
            yield connection
        finally:
            await connection.close()

    def client(self, spill: str) -> TelemetryClient:
        folder = WORK_DIR / "spill" / spill
        shutil.rmtree(folder, ignore_errors=True)
        return TelemetryClient(
            TELEMETRY, token=self.settings.service_token, spill_dir=folder, max_backoff_s=1.0
        )

    async def ready(self) -> None:
        """``/readyz`` until ready (as a load balancer asks), then every check must be ok."""
        async with httpx.AsyncClient(base_url=GATEWAY, timeout=10) as http:
            replies: list[httpx.Response] = []

            async def answered_ready() -> bool:
                replies.append(await http.get("/readyz"))
                return replies[-1].status_code == 200

            try:
                await wait_until("/readyz", answered_ready, timeout_s=60, every_s=0.5)
            except CommandFailed:
                raise CheckFailed(f"/readyz not ready after 60 s: {replies[-1].text}") from None
        body = replies[-1].json()
        expect(body["ready"] is True, f"/readyz: {body}")
        checks = {"postgres", "redis", "telemetry", "throttle", "rollup"}
        expect(set(body["checks"]) == checks, f"/readyz checks {sorted(body['checks'])}")
        expect(set(body["checks"].values()) == {"ok"}, f"/readyz: {body}")

    async def send_events(self) -> None:
        """A job, an LLM call and two cost events through the SDK; each lands once."""
        client = self.client("events")
        ctx = UserContext(self.user, "pro", domain="audio", episode_id="ep-e2e", podcast_id="p")
        async with job_telemetry("transcribe", ctx, client=client) as job:
            job.add_rows(read=120, written=3)
            record_llm_event(
                LlmCall(llm_model="gpt-4o-mini", input_tokens=1200, output_tokens=300),
                client=client,
            )
            track_cost_events(
                [
                    CostEvent("s3_operation", "s3_get", 3, "requests"),
                    CostEvent("ses_email", "ses", 2, "emails"),
                ],
                client=client,
            )
        delivered = await client.flush(timeout_s=60)
        expect(delivered, f"the SDK could not deliver its events ({client.stats})")
        await client.close()
        sent = {"telemetry_job_events": 1, "telemetry_llm_events": 1, "cost_events": 2}
        async with self.database() as db:
            for table, count in sent.items():
                stored = await db.fetchval(
                    f"SELECT count(*) FROM {table} WHERE user_id = $1",  # noqa: S608
                    self.user,
                )
                expect(stored == count, f"{table}: {stored} rows for {self.user}, sent {count}")
            llm_cost = await db.fetchval(
                "SELECT cost_usd FROM telemetry_llm_events WHERE user_id = $1", self.user
            )
            # gpt-4o-mini: $0.15 per 1M input tokens, $0.60 per 1M output tokens.
            price = (1200 * Decimal("0.15") + 300 * Decimal("0.60")) / 1_000_000
            expect(llm_cost == price, f"the LLM call was priced {llm_cost}, not {price}")

    async def check(self) -> None:
        async with aio.insecure_channel(THROTTLE) as channel:
            reply = await throttle_pb2_grpc.ThrottleServiceStub(channel).Check(
                throttle_pb2.CheckRequest(
                    user_id=self.user, tier="pro", domain="audio", est_cpu_ms=100, reserve=False
                ),
                metadata=self.settings.grpc_metadata,
                timeout=10,
            )
        expect(reply.action == throttle_pb2.ALLOW, f"Check answered {reply}")
        expect(reply.reason != "", "Check gave no reason")

    async def rollup(self) -> None:
        day = today(TIMEZONE)
        async with aio.insecure_channel(ROLLUP) as channel:
            reply = await rollup_pb2_grpc.RollupServiceStub(channel).RollupDate(
                rollup_pb2.RollupDateRequest(date=day.isoformat()),
                metadata=self.settings.grpc_metadata,
                timeout=60,
            )
        expect(len(reply.dates) == 1 and reply.dates[0].date == day.isoformat(), f"{reply}")
        figures = reply.dates[0]
        async with self.database() as db:
            events = sum(
                [await db.fetchval(f"SELECT count(*) FROM {t}") for t in RAW_TABLES]  # noqa: S608
            )
            priced = sum(
                [
                    await db.fetchval(f"SELECT coalesce(sum(cost_usd), 0) FROM {t}")  # noqa: S608
                    for t in RAW_TABLES
                ],
                Decimal(0),
            )
        expect(figures.events == events, f"rolled up {figures.events} events of {events}")
        expect(figures.users == 1, f"rolled up {figures.users} users, expected 1")
        cost = Decimal(figures.cost_usd)
        expect(cost > 0, f"the day cost {cost}")
        expect(cost == round(priced, 8), f"the day cost {cost}, its events' prices sum {priced}")

    async def dashboard(self) -> None:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(f"{GATEWAY}/admin/cost/")
                await page.fill("[data-testid=signin-token]", self.settings.admin_token)
                await page.click("[data-testid=signin-submit]")
                row = page.locator("[data-testid=top-users-row]", has_text=self.user)
                await row.first.wait_for(timeout=30_000)
                # Today's spend is the pro tier's: its area is drawn (the others lie flat).
                chart = page.locator("[data-testid=chart-cost-by-tier] .recharts-area-area")
                await chart.first.wait_for(state="attached", timeout=30_000)
                expect(await chart.count() > 0, "the cost-by-tier chart drew no area")
                WORK_DIR.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(WORK_DIR / "dashboard.png"), full_page=True)
            finally:
                await browser.close()

    async def alert(self) -> None:
        async with httpx.AsyncClient(base_url=GATEWAY, timeout=30) as http:
            reply = await http.post(
                "/api/admin/cost/alert:test",
                headers={"Authorization": f"Bearer {self.settings.admin_token}"},
            )
        expect(reply.status_code == 200, f"alert:test answered {reply.status_code}")
        expect(reply.json()["delivered"] is True, f"alert:test: {reply.json()}")
        headers, body = await asyncio.wait_for(self.receiver.received.get(), 10)
        timestamp = headers.get("x-costguard-timestamp", "")
        digest = hmac.new(
            self.settings.webhook_secret.encode(), timestamp.encode() + b"." + body, "sha256"
        ).hexdigest()
        expect(
            headers.get("x-costguard-signature") == f"v1={digest}",
            f"the webhook's signature does not verify: {headers}",
        )
        expect("test alert" in json.loads(body)["text"], f"the webhook's body: {body!r}")

    async def kill_and_recover(self) -> None:
        """``kill -9`` telemetry's process with events in flight and more recorded while it
        is down; the restart policy brings it back and every event lands once."""
        container = await self.compose.container("telemetry")
        pid = (await run("podman", "inspect", "-f", "{{.State.Pid}}", container)).out.strip()
        restarts = await _restarts(container)
        client = self.client("kill")
        ctx = UserContext(f"{self.user}-kill", "free", domain="audio")
        half = 2_000
        llm = LlmCall(llm_model="gpt-4o-mini", input_tokens=10, output_tokens=5, user_ctx=ctx)
        for _ in range(half):
            record_llm_event(llm, client=client)
        os.kill(int(pid), 9)  # the container's main process, from the host, as an OOM kill
        for _ in range(half):
            record_llm_event(llm, client=client)

        async def restarted() -> bool:
            new = await run("podman", "inspect", "-f", "{{.State.Pid}}", container, check=False)
            return new.out.strip() not in ("", "0", pid)

        await wait_until("telemetry's container restarted", restarted, timeout_s=60)
        await poll(
            "telemetry healthy after the restart",
            ["podman", "healthcheck", "run", container],
            timeout_s=120,
        )
        expect(await _restarts(container) > restarts, "telemetry was not restarted")
        expect(await client.flush(timeout_s=120), "the SDK did not deliver after the restart")
        stats = client.stats
        await client.close()
        async with self.database() as db:
            row = await db.fetchrow(
                "SELECT count(*) AS stored, count(DISTINCT event_id) AS ids"
                " FROM telemetry_llm_events WHERE user_id = $1",
                ctx.user_id,
            )
        stored, distinct = (row["stored"], row["ids"]) if row else (0, 0)
        expect(stats.dropped == 0, f"the SDK dropped {stats.dropped}")
        expect(stored == distinct == 2 * half, f"{stored} rows ({distinct} ids) of {2 * half} sent")

    async def down(self) -> None:
        await self.compose.down(volumes=True)
        left = await run(
            "podman", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"
        )
        expect(left.out.strip() == "", f"containers left after down -v: {left.out.split()}")
        volumes = (await run("podman", "volume", "ls", "--format", "{{.Name}}")).out.split()
        kept = [name for name in volumes if name.startswith(f"{PROJECT}_")]
        expect(not kept, f"volumes left after down -v: {kept}")


async def _restarts(container: str) -> int:
    reply = await run("podman", "inspect", "-f", "{{.RestartCount}}", container)
    return int(reply.out.strip())


# The checks against the compose stack, in order: each needs what the ones before did.
COMPOSE_CHECKS = (
    ("gateway /readyz: ready, every dependency ok", Run.ready),
    ("SDK: job, LLM and cost events stored once in Postgres", Run.send_events),
    ("throttle Check answers ALLOW", Run.check),
    ("RollupDate over gRPC: today's events and cost", Run.rollup),
    ("dashboard in Chromium shows the user", Run.dashboard),
    ("alert:test reaches the local webhook, signed", Run.alert),
    ("kill -9 telemetry: restarted, 4,000 events counted once", Run.kill_and_recover),
)


async def compose_checks(e2e: Run, *, keep: bool) -> None:
    try:
        async with e2e.timeline.step("compose up, in stages on podman"):
            await e2e.compose.up()
        for title, check in COMPOSE_CHECKS:
            async with e2e.timeline.step(title):
                await check(e2e)
    finally:
        if not keep:
            async with e2e.timeline.step("compose down -v: no container or volume left"):
                await e2e.down()


async def remove_images() -> None:
    """Every image this check built or tagged, and the layers only they used."""
    images = [standin.image for standin in STAND_INS] + [base_image(s) for s in SUITES]
    images += [f"costguard/{name}:{tag}" for name in IMAGES for tag in ("local", "dev")]
    present = [
        i for i in images if (await run("podman", "image", "exists", i, check=False)).code == 0
    ]
    if present:
        await run("podman", "rmi", "-f", *present)
    await run("podman", "image", "prune", "-f")
    print(f"removed {len(present)} images: {' '.join(present)}")


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make e2e")
    parser.add_argument("--keep", action="store_true", help="leave the compose stack running")
    parser.add_argument("--clean", action="store_true", help="remove the images it built")
    parser.add_argument(
        "--only", choices=["compose", "kube"], help="run the compose or the Kubernetes part only"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    if args.clean:
        await remove_images()
        return 0
    timeline = Timeline()
    receiver = WebhookReceiver()
    failed = False
    try:
        async with timeline.step("preflight: tools, free loopback ports"):
            preflight()
        async with timeline.step("stand-in base images from Debian's packages"):
            await make_stand_ins()
        settings = Settings(webhook_url=await receiver.start())
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        ENV_FILE.write_text(settings.env_file())
        ENV_FILE.chmod(0o600)
        compose = Compose(files=[COMPOSE_FILE, OVERRIDE], env_file=ENV_FILE, project=PROJECT)
        async with timeline.step("build the five images (podman-compose build)"):
            await compose.build()
        if args.only != "kube":
            await compose_checks(Run(settings, receiver, timeline, compose), keep=args.keep)
        if args.only != "compose" and not args.keep:
            await kube_checks(timeline)
    except (
        CommandFailed,
        CheckFailed,
        grpc.RpcError,
        httpx.HTTPError,
        TimeoutError,
        BrowserError,
    ) as exc:
        failed = True
        print(f"\ne2e FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
    except Exception:  # a bug of this check's own: still a failure, still the timeline
        failed = True
        traceback.print_exc()
    finally:
        await receiver.close()
    print(timeline.summary())
    print("e2e FAILED" if failed else "e2e passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
