"""The dashboard in real headless Chromium, against a real gateway with demo data.

Chromium is Debian's (`make browser` installs it); Playwright drives it through
``executable_path``, since a browser cannot be downloaded here. Screenshots land in the
git-ignored ``artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import uvicorn
from grpc import aio
from playwright.async_api import Browser, Page, async_playwright
from redis.asyncio import Redis

from costguard.common.counters import LiveCounters
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.common.rebuild import CounterReconciler
from costguard.devstack import DevStack, free_port
from costguard.devstack.browser import CHROMIUM, CHROMIUM_ARGS
from costguard.devstack.seed import DAYS, USERS, seed_demo
from costguard.gateway.app import create_app
from costguard.gateway.auth import COOKIE, hash_token
from costguard.gateway.config import GatewayConfig
from costguard.gateway.dispatch import GIVE_UP_ATTEMPTS
from costguard.rollup.rollup import Pricing
from costguard.rollup.runs import Rollups
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import ThrottleApp
from costguard.throttle.server import build as build_throttle
from costguard.v1 import throttle_pb2, throttle_pb2_grpc
from tests.conftest import empty_database, stack_env
from tests.processes import poll_until

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"
ADMIN = "browser-admin-token"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def _seed(db: asyncpg.Pool, stack: DevStack) -> None:
    """The demo's 30 days and today, rolled up, and today's live counters rebuilt."""
    conn = await asyncpg.connect(stack.postgres.dsn)  # no JSON codecs: the seed writes text
    try:
        assert await seed_demo(conn)
    finally:
        await conn.close()
    utc = ZoneInfo("UTC")
    today = datetime.now(UTC).date()
    rollups = Rollups(db, tz=utc, pricing=Pricing(SeedPrices.from_env({}), AwsPrices.from_env({})))
    await rollups.run("test", [today - timedelta(days=d) for d in range(DAYS, -1, -1)])
    redis = Redis.from_url(stack.redis.url, decode_responses=True)
    rebuilder = CounterReconciler(
        db, LiveCounters(redis), timezone=utc, aws=AwsPrices.from_env({}), interval_s=60
    )
    await rebuilder.rebuild_today(wait=True)
    await redis.aclose()


@pytest.fixture
async def demo(db: asyncpg.Pool, stack: DevStack) -> None:
    await _seed(db, stack)


@pytest.fixture
async def throttle(demo: None, service_env: dict[str, str]) -> AsyncIterator[ThrottleApp]:
    app = await build_throttle(
        ThrottleConfig.from_env({**service_env, "THROTTLE_BUDGET_RELOAD_SECONDS": "3600"})
    )
    await app.server.start()
    yield app
    await app.server.stop()


@contextlib.asynccontextmanager
async def _gateway(env: dict[str, str]) -> AsyncIterator[str]:
    """The gateway with the built dashboard, signed in by ``ADMIN``; its base URL."""
    env = {
        **env,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}",
        "GATEWAY_WEB_DIST": str(ROOT / "web" / "dist"),
    }
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(GatewayConfig.from_env(env)), host="127.0.0.1", port=port, log_config=None
        )
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await poll_until(started, interval_s=0.02)  # uvicorn offers no start event to await
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def site(throttle: ThrottleApp, service_env: dict[str, str]) -> AsyncIterator[str]:
    async with _gateway(
        {**service_env, "THROTTLE_ADDR": f"127.0.0.1:{throttle.server.port}"}
    ) as url:
        yield url


# Before any page script: every Content-Security-Policy violation the page reports.
_WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


# Per open page: what Chromium logged to the console about the policy.
_CSP_CONSOLE: dict[Page, list[str]] = {}


async def _close(page: Page) -> None:
    """Close ``page``, failing the test if the gateway's Content-Security-Policy blocked
    anything on it: as the page reported it (``securitypolicyviolation``) or as Chromium
    logged it to the console."""
    reported: list[str] = await page.evaluate("window.__cspViolations")
    logged = _CSP_CONSOLE.pop(page)
    await page.close()
    assert reported + logged == []


async def _signed_in(browser: Browser, site: str, width: int, height: int) -> Page:
    # Reduced motion: charts draw at once (no entrance animation to catch half-way).
    page = await browser.new_page(
        viewport={"width": width, "height": height}, reduced_motion="reduce"
    )
    await page.add_init_script(_WATCH_CSP)
    logged = _CSP_CONSOLE[page] = []
    page.on(
        "console",
        lambda message: (
            logged.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    await page.goto(f"{site}/admin/cost/")
    policy = (await page.request.get(f"{site}/admin/cost/")).headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    await page.fill("[data-testid=signin-token]", ADMIN)
    await page.click("[data-testid=signin-submit]")
    await page.wait_for_selector("[data-testid=top-users-row]")
    return page


CHART_MARKS = {
    "chart-cost-by-tier": ".recharts-area-area",
    "chart-jobs-by-domain": ".recharts-bar-rectangle",
    "chart-tokens": ".recharts-line-curve",
}


@pytest.mark.parametrize(("width", "height"), [(820, 1180), (1180, 820), (390, 844)])
async def test_dashboard_renders_every_chart_without_horizontal_overflow(
    browser: Browser, site: str, width: int, height: int
) -> None:
    page = await _signed_in(browser, site, width, height)
    for chart, mark in CHART_MARKS.items():
        await page.wait_for_selector(f"[data-testid={chart}] {mark}")
        assert await page.locator(f"[data-testid={chart}] {mark}").count() > 0, chart
    assert await page.locator("[data-testid=top-users-row]").count() > 0
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"dashboard-{width}x{height}.png"), full_page=True)
    await _close(page)
    assert overflow <= 0


async def test_switching_to_30_days_changes_the_series(browser: Browser, site: str) -> None:
    page = await _signed_in(browser, site, 1180, 820)
    area = page.locator("[data-testid=chart-cost-by-tier] .recharts-area-area").first
    before = await area.get_attribute("d")
    async with page.expect_response(lambda r: "days=30" in r.url and "/summary" in r.url):
        await page.select_option("[data-testid=range-preset]", "30d")
    assert page.url.endswith("/admin/cost/?days=30")
    await page.wait_for_function(
        "(before) => { const p = document.querySelector("
        "'[data-testid=chart-cost-by-tier] .recharts-area-area');"
        " return p && p.getAttribute('d') !== before; }",
        arg=before,
    )
    assert await area.get_attribute("d") != before
    await _close(page)


async def test_the_forecast_states_its_method_and_today_is_drawn_as_a_partial_day(
    browser: Browser, site: str
) -> None:
    page = await _signed_in(browser, site, 1180, 820)
    summary = await page.evaluate(
        "fetch('/api/admin/cost/summary?days=7').then((reply) => reply.json())"
    )
    forecast = summary["forecast"]
    assert forecast["days_averaged"] == 7  # the demo has 30 full days before today
    assert forecast["method"].startswith("month to date + ")
    method = page.locator("[data-testid=forecast-method]")
    # The gateway's words, with its dollar amounts ("$1.0300/day") by the money rule.
    words = re.sub(r"\$(\d+(?:\.\d+)?)", lambda m: _money(Decimal(m[1])), forecast["method"])
    assert await method.inner_text() == f"Projected as {words}."
    chart = page.locator("[data-testid=chart-cost-by-tier]")
    await chart.locator(".recharts-reference-area").wait_for()
    assert "today so far" in await chart.inner_text()
    note = chart.locator("[data-testid=partial-day-note]")
    assert "today so far, a partial day" in await note.inner_text()
    assert await page.locator("[data-testid=chart-tokens] .recharts-reference-area").count() == 1
    sparkline = page.locator("[data-testid=card-cost] .sparkline-partial path")
    assert await sparkline.count() > 0
    await _close(page)


SEED_CAPS = ("daily_cpu_ms_cap", "daily_jobs_cap", "llm_input_tokens_cap", "llm_output_tokens_cap")


async def test_lowering_a_cap_in_the_dashboard_makes_the_next_check_defer(
    browser: Browser, site: str, throttle: ThrottleApp
) -> None:
    page = await _signed_in(browser, site, 1180, 820)
    form = page.locator("[data-testid=budget-form]")
    for seed_name in SEED_CAPS:  # the editor names the seed's caps
        assert seed_name in await form.inner_text()
    await page.fill("[data-testid=budget-scope]", "free")
    await page.fill("[data-testid=budget-cpu-ms]", "1")
    await page.fill("[data-testid=budget-jobs]", "50")
    await page.fill("[data-testid=budget-llm-input]", "2000")
    await page.fill("[data-testid=budget-llm-output]", "")
    await page.click("[data-testid=budget-save]")
    async with page.expect_response(
        lambda r: r.url.endswith("/budgets") and r.request.method == "POST"
    ) as saved:
        await page.click("[data-testid=confirm-yes]")
    response = await saved.value
    assert response.status == 200
    sent = response.request.post_data_json
    assert sent is not None
    stored = (await response.json())["budget"]
    expected = {
        "daily_cpu_ms_cap": 1,
        "daily_jobs_cap": 50,
        "llm_input_tokens_cap": 2000,
        "llm_output_tokens_cap": None,  # empty: no cap
    }
    assert {name: sent[name] for name in SEED_CAPS} == expected
    assert {name: stored[name] for name in SEED_CAPS} == expected
    # A same-origin JSON write: what the gateway's cross-site check lets through.
    assert response.request.headers["content-type"] == "application/json"
    async with asyncio.timeout(10):
        await throttle.budgets.wait_for_budget("free", expected)
    async with aio.insecure_channel(f"127.0.0.1:{throttle.server.port}") as channel:
        reply = await throttle_pb2_grpc.ThrottleServiceStub(channel).Check(
            throttle_pb2.CheckRequest(user_id="user-00", tier="free", est_cpu_ms=100)
        )
    assert reply.action == throttle_pb2.DEFER
    assert "free cpu_ms" in reply.reason

    # Signing out ends the session on the server: the cookie it had no longer signs in.
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == COOKIE]
    async with page.expect_response(
        lambda r: r.url.endswith("/api/admin/session") and r.request.method == "DELETE"
    ) as signed_out:
        await page.click("[data-testid=signout]")
    assert (await signed_out.value).status == 200
    await page.wait_for_selector("[data-testid=signin-token]")
    async with httpx.AsyncClient(base_url=site) as client:
        reused = await client.get(
            "/api/admin/me", headers={"cookie": f"{COOKIE}={cookie['value']}"}
        )
    assert reused.status_code == 401
    await _close(page)


# Issue 17's panels and the user's page: one seeded stack for the tests below (nothing in them
# writes), with alerts and throttle decisions of its own whose figures each test recomputes.

PHONE, IPAD, DESKTOP = (390, 844), (820, 1180), (1440, 900)
USER_JOBS_CAP = 1000
ACTIONS = ("ALLOW", "DOWNGRADE", "DEFER", "DENY")


@dataclass(frozen=True)
class Alert:
    back: int  # days before today
    scope: str
    metric: str
    threshold: str
    kind: str
    used: str
    cap: str
    delivered: bool
    attempts: int
    last_error: str | None

    def status(self) -> str:
        if self.delivered:
            return "sent"
        return "failed" if self.attempts >= GIVE_UP_ATTEMPTS else "pending"


ALERTS = (
    Alert(0, "global", "cost_usd", "0.8", "crossed", "20.5", "25", True, 1, None),
    Alert(1, "free", "jobs", "0.8", "crossed", "500", "600", False, 3, "webhook answered 503"),
    Alert(
        2,
        "free",
        "cpu_ms",
        "1",
        "crossed",
        "3000000",
        "3000000",
        False,
        GIVE_UP_ATTEMPTS,
        "timeout",
    ),
    Alert(2, "free", "cpu_ms", "1", "resolved", "10", "3000000", True, 1, None),
    Alert(20, "global", "jobs", "0.8", "crossed", "4100", "5000", True, 2, None),
)


def _decisions(back: int, tier: str, index: int) -> int:
    """The throttle decisions inserted for a day, tier and action: varied, never all zero."""
    return (back * 7 + index * 3 + len(tier)) % 11 + (20 if index == 0 else 0)


@dataclass(frozen=True)
class Seeded:
    site: str
    today: date
    db: asyncpg.Pool

    def alerts(self, days: int) -> list[Alert]:
        return [a for a in ALERTS if a.back < days]

    def decision_totals(self, days: int) -> dict[str, dict[str, int]]:
        return {
            tier: {
                a: sum(_decisions(b, tier, i) for b in range(days)) for i, a in enumerate(ACTIONS)
            }
            for tier in ("free", "pro")
        }


@pytest.fixture(scope="module")
async def seeded(pool: asyncpg.Pool, redis_client: Redis, stack: DevStack) -> AsyncIterator[Seeded]:
    db = await empty_database(pool, redis_client)
    await _seed(db, stack)
    now = datetime.now(UTC)
    today = now.date()
    for a in ALERTS:
        day = today - timedelta(days=a.back)
        created = min(datetime.combine(day, time(12), UTC), now - timedelta(minutes=1))
        await db.execute(
            "INSERT INTO budget_alerts (day, apply_scope, metric, threshold, kind, used, cap,"
            " created_at, delivered_at, delivery_attempts, last_error)"
            " VALUES ($1, $2, $3, $4::numeric, $5, $6::numeric, $7::numeric, $8, $9, $10, $11)",
            day, a.scope, a.metric, a.threshold, a.kind, a.used, a.cap, created,
            created + timedelta(seconds=2) if a.delivered else None, a.attempts, a.last_error,
        )  # fmt: skip
    await db.executemany(
        "INSERT INTO throttle_decisions_daily (date, tier, action, decisions)"
        " VALUES ($1, $2, $3, $4)",
        [
            (today - timedelta(days=back), tier, action, _decisions(back, tier, index))
            for back in range(40)
            for tier in ("free", "pro")
            for index, action in enumerate(ACTIONS)
        ],
    )
    await db.executemany(
        "INSERT INTO throttle_user_decisions_daily"
        " (user_id, date, tier, action, decisions, last_reason, last_at)"
        " VALUES ($1, $2, $3, 'DEFER', $4, $5, $6)",
        [
            (user, today, tier, index + 1, f"{tier} cpu_ms cap", now - timedelta(minutes=2))
            for index, (user, tier) in enumerate(USERS)
        ],
    )
    # Each user's own cap on jobs, beside the seed's global and free-tier budgets (the
    # largest bigint is no cap, as the seed writes it).
    await db.executemany(
        "INSERT INTO cost_budgets (apply_scope, daily_cpu_ms_cap, daily_jobs_cap,"
        " llm_input_tokens_cap, llm_output_tokens_cap, updated_by)"
        " VALUES ($1, $3, $2, $3, $3, 'test')",
        [(f"user:{user}", USER_JOBS_CAP, 2**63 - 1) for user, _ in USERS],
    )
    async with _gateway(stack_env(stack)) as url:
        yield Seeded(url, today, db)


def _money(value: Decimal) -> str:
    """The dashboard's money rule: cents with separators, a nonzero amount under a cent "<$0.01"."""
    if 0 < value < Decimal("0.01"):
        return "<$0.01"
    return f"${value.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


async def _overflow(page: Page) -> int:
    return int(await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


async def _assert_decisions(page: Page, seeded: Seeded, days: int) -> None:
    for tier, counts in seeded.decision_totals(days).items():
        row = page.locator(f"[data-testid=decisions-row][data-tier={tier}]")
        for action, count in counts.items():
            cell = row.locator(f"[data-action={action}]")
            assert await cell.inner_text() == f"{count:,}", (tier, action, days)
        assert await row.locator("[data-action=total]").inner_text() == f"{sum(counts.values()):,}"


async def _assert_alerts(page: Page, seeded: Seeded, days: int) -> None:
    alerts = seeded.alerts(days)
    for status in ("sent", "failed", "pending"):
        expected = sum(a.status() == status for a in alerts)
        assert await page.inner_text(f"[data-testid=alerts-count-{status}]") == str(expected)
    resolved = sum(a.kind == "resolved" for a in alerts)
    assert await page.inner_text("[data-testid=alerts-count-resolved]") == str(resolved)
    rows = page.locator("[data-testid=alerts-row]")
    assert await rows.count() == len(alerts)
    # Newest first: the first row is the latest day's.
    assert (
        await rows.first.get_attribute("data-status") == min(alerts, key=lambda a: a.back).status()
    )


async def _user_figures(seeded: Seeded, user_id: str, days: int) -> dict[str, str]:
    """What the user's page must show for the last ``days`` days, from the stored rows."""
    first = seeded.today - timedelta(days=days - 1)
    begin = datetime.combine(first, time(0), UTC)
    end = datetime.combine(seeded.today + timedelta(days=1), time(0), UTC)
    db = seeded.db
    jobs = await db.fetchval(
        "SELECT count(*) FROM telemetry_job_events WHERE user_id = $1"
        " AND coalesce(started_at, created_at) >= $2 AND coalesce(started_at, created_at) < $3",
        user_id, begin, end,
    )  # fmt: skip
    calls = await db.fetchval(
        "SELECT count(*) FROM telemetry_llm_events WHERE user_id = $1"
        " AND created_at >= $2 AND created_at < $3",
        user_id, begin, end,
    )  # fmt: skip
    cost = await db.fetchval(
        "SELECT coalesce(sum(cost_usd), 0) FROM cost_user_daily"
        " WHERE user_id = $1 AND date BETWEEN $2 AND $3",
        user_id, first, seeded.today,
    )  # fmt: skip
    return {"jobs": f"{jobs:,}", "ai_calls": f"{calls:,}", "cost_usd": _money(Decimal(cost))}


async def _open_dashboard(browser: Browser, seeded: Seeded, size: tuple[int, int]) -> Page:
    page = await _signed_in(browser, seeded.site, *size)
    await page.wait_for_selector("[data-testid=decisions-row]")
    await page.wait_for_selector("[data-testid=alerts-row]")
    return page


@pytest.mark.parametrize("size", [PHONE, IPAD, DESKTOP], ids=["phone", "ipad", "desktop"])
async def test_the_panels_and_a_users_page_show_the_seeded_figures_on_every_screen(
    browser: Browser, seeded: Seeded, size: tuple[int, int]
) -> None:
    page = await _open_dashboard(browser, seeded, size)
    await _assert_decisions(page, seeded, 7)
    await _assert_alerts(page, seeded, 7)
    assert await page.locator("[data-testid=decisions-chart] .recharts-bar-rectangle").count() > 0
    assert "today so far" in await page.inner_text("[data-testid=window]")
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = f"{size[0]}x{size[1]}"
    await page.screenshot(path=str(SHOTS / f"panels-{name}.png"), full_page=True)
    assert await _overflow(page) <= 0

    link = page.locator("[data-testid=top-users-link]").first
    user_id = await link.inner_text()
    await link.click()
    await page.wait_for_selector("[data-testid=user-day-row]")
    assert f"user={user_id}" in page.url
    expected = await _user_figures(seeded, user_id, 7)
    for key, text in expected.items():
        assert await page.inner_text(f"[data-testid=user-{key}]") == text, key
    assert await page.locator("[data-testid=user-day-row]").count() == 7
    today_row = page.locator(f"[data-testid=user-day-row][data-date='{seeded.today}']")
    assert "today so far" in await today_row.inner_text()
    index = [u for u, _ in USERS].index(user_id)
    decision = page.locator("[data-testid=user-decision-row]")
    assert await decision.count() == 1
    assert f"DEFER{index + 1:,}" in (await decision.inner_text()).replace("\t", "")
    own_cap = page.locator("[data-testid=user-cap-row]", has_text=f"user:{user_id} · jobs")
    jobs_today = await seeded.db.fetchval(
        "SELECT count(*) FROM telemetry_job_events WHERE user_id = $1"
        " AND coalesce(started_at, created_at) >= $2",
        user_id, datetime.combine(seeded.today, time(0), UTC),
    )  # fmt: skip
    assert f"{jobs_today:,} / {USER_JOBS_CAP:,}" in await own_cap.inner_text()
    assert await page.locator("[data-testid=user-event-row]").count() > 0
    await page.screenshot(path=str(SHOTS / f"user-{name}.png"), full_page=True)
    assert await _overflow(page) <= 0

    await page.click("[data-testid=user-back]")
    await page.wait_for_selector("[data-testid=decisions-row]")
    assert "user=" not in page.url
    await _close(page)


async def test_a_preset_changes_the_url_and_the_figures_and_back_restores_them(
    browser: Browser, seeded: Seeded
) -> None:
    page = await _open_dashboard(browser, seeded, DESKTOP)
    async with page.expect_response(lambda r: "/alerts?days=30" in r.url):
        await page.select_option("[data-testid=range-preset]", "30d")
    assert page.url.endswith("/admin/cost/?days=30")
    await page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=alerts-row]').length === n",
        arg=len(seeded.alerts(30)),
    )
    await _assert_alerts(page, seeded, 30)
    await page.wait_for_selector("[data-testid=decisions-row][data-tier=free]")
    await page.wait_for_function(
        "(n) => document.querySelector("
        "'[data-testid=decisions-row][data-tier=free] [data-action=total]')?.textContent === n",
        arg=f"{sum(seeded.decision_totals(30)['free'].values()):,}",
    )
    await _assert_decisions(page, seeded, 30)

    await page.go_back()
    await page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=alerts-row]').length === n",
        arg=len(seeded.alerts(7)),
    )
    assert "days=30" not in page.url
    assert await page.input_value("[data-testid=range-preset]") == "7d"
    await _assert_decisions(page, seeded, 7)
    await _close(page)


async def _csv(page: Page, href: str) -> dict[str, Any]:
    reply: dict[str, Any] = await page.evaluate(
        "async (href) => { const r = await fetch(href);"
        " return {status: r.status, type: r.headers.get('content-type'), text: await r.text()}; }",
        href,
    )
    return reply


async def test_every_csv_link_downloads_its_table_with_the_pages_session(
    browser: Browser, seeded: Seeded
) -> None:
    page = await _open_dashboard(browser, seeded, DESKTOP)
    await page.wait_for_selector("[data-testid=unpriced-models] a[download]")
    hrefs = await page.eval_on_selector_all(
        "a[download]", "(links) => links.map((a) => a.getAttribute('href'))"
    )
    tables = {parse_qs(urlsplit(h).query)["table"][0] for h in hrefs}
    assert tables == {"cost_by_day", "breakdown", "top_users", "unpriced", "decisions", "alerts"}
    for href in hrefs:
        reply = await _csv(page, href)
        assert reply["status"] == 200, href
        assert reply["type"].startswith("text/csv"), href
    alerts = await _csv(page, next(h for h in hrefs if "table=alerts" in h))
    assert alerts["text"].splitlines()[0].startswith("id,day,scope,metric,threshold,kind")
    assert len(alerts["text"].strip().splitlines()) == 1 + len(seeded.alerts(7))

    await page.locator("[data-testid=top-users-link]").first.click()
    await page.wait_for_selector("[data-testid=user-day-row]")
    user_hrefs = await page.eval_on_selector_all(
        "[data-testid=user-page] a[download]", "(links) => links.map((a) => a.getAttribute('href'))"
    )
    assert len(user_hrefs) == 4
    for href in user_hrefs:
        reply = await _csv(page, href)
        assert reply["status"] == 200, href
        assert reply["type"].startswith("text/csv"), href
    days = await _csv(page, next(h for h in user_hrefs if "table=user_days" in h))
    assert len(days["text"].strip().splitlines()) == 1 + 7
    await _close(page)


async def test_a_top_users_link_opens_the_users_page_in_a_new_tab_and_an_unknown_user_says_so(
    browser: Browser, seeded: Seeded
) -> None:
    page = await _open_dashboard(browser, seeded, DESKTOP)
    await page.select_option("[data-testid=range-preset]", "30d")
    await page.wait_for_url("**/admin/cost/?days=30")
    link = page.locator("[data-testid=top-users-link]").first
    await page.wait_for_function(
        "() => document.querySelector('[data-testid=top-users-link]')"
        "?.getAttribute('href').includes('days=30')"
    )
    href = await link.get_attribute("href")
    user_id = await link.inner_text()
    assert href == f"?days=30&user={user_id}"
    # Ctrl+click: the browser's own new tab (the page leaves a modified click alone).
    async with page.context.expect_page() as opened:
        await link.click(modifiers=["ControlOrMeta"])
    tab = await opened.value
    await tab.wait_for_selector("[data-testid=user-day-row]")
    assert tab.url == f"{seeded.site}/admin/cost/{href}"
    assert "user=" not in page.url  # the dashboard stayed where it was
    assert await tab.locator("[data-testid=user-day-row]").count() == 30
    assert (
        await tab.inner_text("[data-testid=user-cost_usd]")
        == (await _user_figures(seeded, user_id, 30))["cost_usd"]
    )
    await tab.goto(f"{seeded.site}/admin/cost/?user=nobody-at-all")
    await tab.wait_for_selector("[data-testid=user-missing]")
    assert "No such user" in await tab.inner_text("[data-testid=user-missing]")
    await tab.close()
    await _close(page)
