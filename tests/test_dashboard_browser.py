"""The dashboard in real headless Chromium, against a real gateway with demo data.

Chromium is Debian's (`make browser` installs it); Playwright drives it through
``executable_path``, since a browser cannot be downloaded here. Screenshots land in the
git-ignored ``artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
from costguard.devstack.seed import DAYS, seed_demo
from costguard.gateway.app import create_app
from costguard.gateway.auth import COOKIE, hash_token
from costguard.gateway.config import GatewayConfig
from costguard.rollup.rollup import Pricing
from costguard.rollup.runs import Rollups
from costguard.throttle.config import ThrottleConfig
from costguard.throttle.server import ThrottleApp
from costguard.throttle.server import build as build_throttle
from costguard.v1 import throttle_pb2, throttle_pb2_grpc
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


@pytest.fixture
async def demo(db: asyncpg.Pool, stack: DevStack) -> None:
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
async def throttle(demo: None, service_env: dict[str, str]) -> AsyncIterator[ThrottleApp]:
    app = await build_throttle(
        ThrottleConfig.from_env({**service_env, "THROTTLE_BUDGET_RELOAD_SECONDS": "3600"})
    )
    await app.server.start()
    yield app
    await app.server.stop()


@pytest.fixture
async def site(throttle: ThrottleApp, service_env: dict[str, str]) -> AsyncIterator[str]:
    env = {
        **service_env,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)}",
        "THROTTLE_ADDR": f"127.0.0.1:{throttle.server.port}",
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
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


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
    assert await method.inner_text() == f"Projected as {forecast['method']}."
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
