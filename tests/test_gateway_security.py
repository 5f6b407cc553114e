"""The gateway against hostile input and hostile pages: bounded bodies and query numbers,
browser security headers, sessions revoked on sign-out, cross-site requests refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from costguard.common.config import ConfigError
from costguard.devstack import free_port
from costguard.gateway import api_ops
from costguard.gateway.app import create_app
from costguard.gateway.auth import COOKIE, SESSION_SECONDS, hash_token
from costguard.gateway.config import GatewayConfig

ADMIN, VIEWER = "security-admin-token", "security-viewer-token"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
JSON = {"Content-Type": "application/json"}
SAME_ORIGIN = {"Origin": "http://gateway"}
BUDGETS, SESSION = "/api/admin/cost/budgets", "/api/admin/session"
# The documented limits (README, "What the gateway refuses"): written here, not imported, so
# that a changed limit is a changed promise.
MAX_BODY_BYTES, MAX_DEPTH = 64 * 1024, 32
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _env(service_env: dict[str, str], **more: str) -> dict[str, str]:
    return {
        **service_env,
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{hash_token(ADMIN)},dash:viewer:{hash_token(VIEWER)}",
        "GATEWAY_SESSION_SECRET": "security-session-secret",
        "ALERT_DISPATCH_SECONDS": "3600",
        **more,
    }


@pytest.fixture
def web_dist(tmp_path: Path) -> Path:
    """A stand-in dashboard build: the headers test needs static files, not the real app."""
    (tmp_path / "dist" / "assets").mkdir(parents=True)
    (tmp_path / "dist" / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "dist" / "assets" / "app.js").write_text("export {};")
    return tmp_path / "dist"


@pytest.fixture
async def gateway_app(
    db: asyncpg.Pool, service_env: dict[str, str], web_dist: Path
) -> AsyncIterator[Starlette]:
    app = create_app(GatewayConfig.from_env(_env(service_env, GATEWAY_WEB_DIST=str(web_dist))))
    async with app.router.lifespan_context(app):
        yield app


def _client(app: Starlette, *, raise_errors: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_errors)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


@pytest.fixture
async def gateway(gateway_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(gateway_app) as client:
        yield client


async def _signed_in(client: httpx.AsyncClient) -> str:
    """Sign ``client`` in as the dashboard does; the session cookie's value."""
    reply = await client.post(SESSION, json={"token": ADMIN}, headers=SAME_ORIGIN)
    assert reply.status_code == 200, reply.text
    return client.cookies[COOKIE]


def _refused(reply: httpx.Response, status: int, field: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["field"] == field


# --- bodies ------------------------------------------------------------------------------

BODY_ROUTES = [BUDGETS, SESSION]


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


HOSTILE_BODIES = {
    "a 5,000-digit integer": b'{"apply_scope": "global", "token": ' + b"9" * 5000 + b"}",
    "a 21-digit integer": b'{"apply_scope": "global", "token": ' + b"1" * 21 + b"}",
    "a negative 5,000-digit integer": b'{"token": -' + b"9" * 5000 + b"}",
    "arrays nested 5,000 deep": _nested(5000),
    "objects nested 5,000 deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "nesting one past the limit": b'{"token": ' + _nested(MAX_DEPTH) + b"}",
    "NaN": b'{"apply_scope": "global", "token": NaN}',
    "Infinity": b'{"token": Infinity}',
    "-Infinity": b'{"token": -Infinity}',
    "a float beyond double": b'{"token": 1e999}',
    "invalid UTF-8": b'{"token": "\xff\xfe"}',
    "UTF-16": '{"token": "x"}'.encode("utf-16"),
    "a UTF-8 byte order mark": b'\xef\xbb\xbf{"token": "x"}',
    "an unpaired surrogate escape in a value": b'{"apply_scope": "global", "token": "\\ud800"}',
    "an unpaired surrogate escape in a key": b'{"apply_scope": "global", "\\udc00": 1}',
    "not JSON": b"token=x",
    "truncated JSON": b'{"token": "x"',
    "an empty body": b"",
    "an array": b"[1, 2]",
    "a string": b'"token"',
}


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
async def test_a_hostile_body_is_a_400_naming_the_body(
    gateway: httpx.AsyncClient, path: str, body: bytes
) -> None:
    reply = await gateway.post(path, content=body, headers={**AS_ADMIN, **JSON})
    _refused(reply, 400, "body")


@pytest.mark.parametrize("path", BODY_ROUTES)
async def test_nesting_up_to_the_limit_is_parsed_and_brackets_in_strings_do_not_count(
    gateway: httpx.AsyncClient, path: str
) -> None:
    # Deep, but within the limit: parsed, and then refused by the route for what it holds.
    deep = b'{"apply_scope": "global", "token": ' + _nested(MAX_DEPTH - 1) + b"}"
    reply = await gateway.post(path, content=deep, headers={**AS_ADMIN, **JSON})
    assert reply.status_code == 400
    assert reply.json()["field"] != "body"
    # A string full of brackets, with an escaped quote that must not end it early.
    text = json.dumps({"token": '\\"' + "[{" * 100, "apply_scope": "global"}).encode()
    reply = await gateway.post(path, content=text, headers={**AS_ADMIN, **JSON})
    assert reply.json().get("field") != "body", reply.text
    # An escaped backslash does end a string: the brackets after it count.
    after = b'{"token": "a\\\\", "x": ' + _nested(MAX_DEPTH) + b"}"
    reply = await gateway.post(path, content=after, headers={**AS_ADMIN, **JSON})
    _refused(reply, 400, "body")


async def test_integers_of_up_to_20_digits_reach_the_field_check(
    gateway: httpx.AsyncClient,
) -> None:
    for digits, field in [("9" * 20, "daily_jobs_cap"), ("-" + "9" * 20, "daily_jobs_cap"),
                          ("9" * 21, "body")]:  # fmt: skip
        body = f'{{"apply_scope": "global", "daily_jobs_cap": {digits}}}'.encode()
        reply = await gateway.post(BUDGETS, content=body, headers={**AS_ADMIN, **JSON})
        _refused(reply, 400, field)


async def test_a_body_past_the_limit_is_413_and_is_not_read_past_it(
    gateway: httpx.AsyncClient,
) -> None:
    # Exactly the limit is read (whitespace is JSON); one byte more is refused.
    token = json.dumps({"token": "wrong"}).encode()
    exact = token + b" " * (MAX_BODY_BYTES - len(token))
    reply = await gateway.post(SESSION, content=exact, headers=JSON)
    assert reply.status_code == 401
    _refused(await gateway.post(SESSION, content=exact + b" ", headers=JSON), 413, "body")
    ten_mb = b"[" + b"1," * (5 * 1024 * 1024) + b"1]"
    for path in BODY_ROUTES:
        _refused(
            await gateway.post(path, content=ten_mb, headers={**AS_ADMIN, **JSON}), 413, "body"
        )

    chunk = b" " * 65536
    pulled = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(160):  # 10 MiB
            pulled += 1
            yield chunk

    # Declared too large: refused before a byte is read.
    declared = {**AS_ADMIN, **JSON, "Content-Length": str(160 * len(chunk))}
    _refused(await gateway.post(BUDGETS, content=stream(), headers=declared), 413, "body")
    assert pulled == 0
    # Chunked, with no length declared: refused once the limit is passed.
    _refused(await gateway.post(BUDGETS, content=stream(), headers={**AS_ADMIN, **JSON}), 413,
             "body")  # fmt: skip
    assert pulled <= MAX_BODY_BYTES // len(chunk) + 2


# --- query numbers and dates -------------------------------------------------------------

# Digits that str.isdigit() admits and int() or date.fromisoformat() may not: superscript
# two, Arabic-Indic three and seven, fullwidth one, two, zero and five.
SUPER_2, ARABIC_3, ARABIC_7, WIDE_1 = "\u00b2", "\u0663", "\u0667", "\uff11"
WIDE_2025 = "\uff12\uff10\uff12\uff15"
NOT_WHOLE_NUMBERS = [SUPER_2, ARABIC_3, WIDE_1, "0", "-1", "1.0", "1e3", " 1", "", "9" * 5000]
NOT_WHOLE_NUMBERS += ["9" * 19]
NOT_DAYS = [SUPER_2, ARABIC_7, "-7", "07", "7.0", "", "9" * 5000, "0", "93", "+7"]
NOT_DATES = ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01", f"{WIDE_2025}-01-01"]
NOT_DATES += [f"2025-0{ARABIC_3}-01", "20250101", "2025-W01-1", "2025-02-30", "", "9" * 5000]
QUERY_CASES = [
    ("/api/admin/cost/summary?", "days", NOT_DAYS),
    ("/api/admin/cost/users?", "days", NOT_DAYS),
    ("/api/admin/cost/users?", "limit", [*NOT_WHOLE_NUMBERS, "501"]),
    ("/api/admin/cost/podcasts/p1/episodes?", "limit", [*NOT_WHOLE_NUMBERS, "5001"]),
    ("/api/admin/cost/monthly?", "year", [*NOT_WHOLE_NUMBERS, "1999", "2101", "-2025"]),
    ("/api/admin/cost/monthly?year=2025&", "month", [*NOT_WHOLE_NUMBERS, "13"]),
    ("/api/admin/cost/daily?", "from", NOT_DATES),
    ("/api/admin/cost/daily?", "to", NOT_DATES),
    ("/api/admin/cost/daily?from=2025-01-01&", "to", NOT_DATES),
    ("/api/admin/cost/daily?to=2025-01-01&", "from", NOT_DATES),
]


@pytest.mark.parametrize(("path", "name", "values"), QUERY_CASES, ids=lambda v: str(v)[:40])
async def test_every_query_number_and_date_is_checked(
    gateway: httpx.AsyncClient, path: str, name: str, values: list[str]
) -> None:
    for value in values:
        reply = await gateway.get(path, params={name: value}, headers=AS_ADMIN)
        assert (reply.status_code, reply.json().get("field")) == (400, name), (value, reply.text)


async def test_a_given_from_is_used_as_given_at_either_bound(gateway: httpx.AsyncClient) -> None:
    for first, last in [("2000-01-01", "2000-01-31"), ("2100-12-01", "2100-12-31")]:
        reply = await gateway.get(
            "/api/admin/cost/daily", params={"from": first, "to": last}, headers=AS_ADMIN
        )
        assert reply.status_code == 200, reply.text
        assert (reply.json()["from"], reply.json()["to"]) == (first, last)
    earliest = await gateway.get("/api/admin/cost/daily?to=2000-01-01", headers=AS_ADMIN)
    assert (earliest.status_code, earliest.json()["from"]) == (200, "1999-12-03")


# --- browser security headers ------------------------------------------------------------


def _has_browser_headers(reply: httpx.Response) -> None:
    assert reply.headers["content-security-policy"] == CSP, reply.url
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"


async def test_every_response_carries_the_browser_security_headers(
    gateway: httpx.AsyncClient,
    service_env: dict[str, str],
    web_dist: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies = [
        await gateway.get("/admin/cost/"),  # the dashboard's index.html
        await gateway.get("/admin/cost/assets/app.js"),
        await gateway.get("/admin/cost/assets/missing.js"),  # 404 from the static files
        await gateway.get("/admin/cost"),  # the redirect
        await gateway.get("/healthz"),
        await gateway.get("/metrics"),
        await gateway.get("/api/openapi.json"),
        await gateway.get("/api/admin/cost/summary"),  # 401
        await gateway.get("/api/admin/cost/summary", headers={"Authorization": f"Bearer {VIEWER}"}),
        await gateway.get("/api/admin/cost/summary?days=93", headers=AS_ADMIN),  # 400
        await gateway.get("/nowhere"),  # 404
        await gateway.put(BUDGETS, headers=AS_ADMIN),  # 405
        await gateway.post(BUDGETS, content=b" " * (MAX_BODY_BYTES + 1), headers=AS_ADMIN),  # 415
        await gateway.post(BUDGETS, content=b"{}", headers={**JSON, "Origin": "http://evil"}),
    ]
    assert [r.status_code for r in replies] == [
        200, 200, 404, 307, 200, 200, 200, 401, 403, 400, 404, 405, 415, 403,
    ]  # fmt: skip
    for reply in replies:
        _has_browser_headers(reply)
    assert "error" in replies[2].json()

    async def broken(request: object) -> None:
        raise RuntimeError("a bug")

    # An unhandled error answers a JSON 500 with the headers too.
    monkeypatch.setattr(api_ops, "healthz", broken)
    app = create_app(GatewayConfig.from_env(_env(service_env, GATEWAY_WEB_DIST=str(web_dist))))
    async with app.router.lifespan_context(app), _client(app, raise_errors=False) as client:
        failed = await client.get("/healthz")
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal error"}
    _has_browser_headers(failed)


# --- sessions ----------------------------------------------------------------------------


async def test_signing_out_revokes_the_session_server_side(
    gateway: httpx.AsyncClient, redis_client: Redis
) -> None:
    cookie = await _signed_in(gateway)
    assert (await gateway.get("/api/admin/cost/summary")).status_code == 200
    (key,) = await redis_client.keys("cg:session:*")
    assert SESSION_SECONDS - 5 <= await redis_client.ttl(key) <= SESSION_SECONDS
    signed_out = await gateway.delete(SESSION, headers=SAME_ORIGIN)
    assert signed_out.status_code == 200
    assert await redis_client.keys("cg:session:*") == []
    gateway.cookies.clear()
    old = {"cookie": f"{COOKIE}={cookie}"}
    after = [
        await gateway.get("/api/admin/cost/summary", headers=old),
        await gateway.get("/api/admin/me", headers=old),
        await gateway.post(BUDGETS, json={"apply_scope": "global"}, headers={**old, **SAME_ORIGIN}),
    ]
    assert [r.status_code for r in after] == [401, 401, 401]


async def test_signing_in_again_ends_the_session_the_browser_held(
    gateway: httpx.AsyncClient, redis_client: Redis
) -> None:
    first = await _signed_in(gateway)
    second = await _signed_in(gateway)  # the client sends the first cookie with it
    assert first != second
    assert len(await redis_client.keys("cg:session:*")) == 1
    gateway.cookies.clear()
    old = await gateway.get("/api/admin/me", headers={"cookie": f"{COOKIE}={first}"})
    new = await gateway.get("/api/admin/me", headers={"cookie": f"{COOKIE}={second}"})
    assert (old.status_code, new.status_code) == (401, 200)


async def test_flushing_redis_signs_everyone_out(
    gateway: httpx.AsyncClient, redis_client: Redis
) -> None:
    await _signed_in(gateway)
    assert (await gateway.get("/api/admin/me")).status_code == 200
    await redis_client.flushdb()
    assert (await gateway.get("/api/admin/me")).status_code == 401


async def test_redis_unreachable_during_a_cookie_check_is_a_503(
    gateway: httpx.AsyncClient, db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    cookie = await _signed_in(gateway)
    dead = _env(service_env, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(GatewayConfig.from_env(dead))
    async with app.router.lifespan_context(app), _client(app) as client:
        with_cookie = await client.get(
            "/api/admin/cost/budgets", headers={"cookie": f"{COOKIE}={cookie}"}
        )
        me = await client.get("/api/admin/me", headers={"cookie": f"{COOKIE}={cookie}"})
        sign_in = await client.post(SESSION, json={"token": ADMIN})
        bearer = await client.get("/api/admin/cost/budgets", headers=AS_ADMIN)
    for reply in (with_cookie, me, sign_in):
        assert reply.status_code == 503, reply.text
        assert "redis" in reply.json()["error"].lower()
    assert bearer.status_code == 200  # bearer tokens need no session store


async def test_a_tampered_or_foreign_cookie_is_refused(gateway: httpx.AsyncClient) -> None:
    cookie = await _signed_in(gateway)
    gateway.cookies.clear()
    payload, _, signature = cookie.partition(".")
    for value in [payload + "." + signature[::-1], payload, "x" * 4000, "." * 10, "é.é"]:
        cookie_header = f"{COOKIE}={value}".encode("latin-1")
        reply = await gateway.get("/api/admin/me", headers={b"cookie": cookie_header})
        assert reply.status_code == 401, value


# --- cross-site requests -----------------------------------------------------------------


@pytest.fixture
async def signed_in(gateway: httpx.AsyncClient) -> httpx.AsyncClient:
    await _signed_in(gateway)
    return gateway


BUDGET = json.dumps({"apply_scope": "free", "daily_jobs_cap": 5}).encode()


@pytest.mark.parametrize(
    ("headers", "status", "field"),
    [
        # The attack: a form or a no-cors fetch from another site posts text/plain.
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403, "Origin"),
        ({"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}, 403, "Origin"),
        ({**JSON, "Origin": "http://evil.example"}, 403, "Origin"),
        ({**JSON, "Origin": "null"}, 403, "Origin"),
        ({**JSON, "Origin": "http://gateway:8080"}, 403, "Origin"),  # another port
        ({**JSON, "Sec-Fetch-Site": "same-site"}, 403, "Origin"),
        ({**JSON, "Sec-Fetch-Site": "none"}, 403, "Origin"),
        (JSON, 403, "Origin"),  # neither Origin nor Sec-Fetch-Site: not provably same-origin
        ({"Content-Type": "text/plain", **SAME_ORIGIN}, 415, "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded", **SAME_ORIGIN}, 415, "Content-Type"),
        ({"Content-Type": "application/json; charset=latin-1", **SAME_ORIGIN}, 415, "Content-Type"),
        ({**SAME_ORIGIN}, 415, "Content-Type"),
    ],
)
async def test_a_cookie_authenticated_write_must_be_same_origin_json(
    signed_in: httpx.AsyncClient, db: asyncpg.Pool, headers: dict[str, str], status: int, field: str
) -> None:
    reply = await signed_in.post(BUDGETS, content=BUDGET, headers=headers)
    _refused(reply, status, field)
    assert await db.fetchval("SELECT count(*) FROM cost_budgets") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {**JSON, **SAME_ORIGIN},
        {**JSON, "Origin": "http://gateway:80"},  # the default port, spelt out
        {**JSON, "Origin": "HTTP://GATEWAY"},
        # A proxy in front terminated TLS: the page is https, the gateway sees http.
        {**JSON, "Origin": "https://gateway"},
        {**JSON, "Sec-Fetch-Site": "same-origin"},
        {"Content-Type": "Application/JSON; charset=UTF-8", **SAME_ORIGIN},
    ],
)
async def test_a_same_origin_json_write_with_the_cookie_is_accepted(
    signed_in: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    reply = await signed_in.post(BUDGETS, content=BUDGET, headers=headers)
    assert reply.status_code == 200, reply.text


async def test_every_unsafe_route_checks_the_origin_of_a_cookie(
    signed_in: httpx.AsyncClient,
) -> None:
    for method, path in [
        ("POST", "/api/admin/cost/alert:test"),
        ("POST", "/api/admin/cost/episodes/ep1/recalculate"),
        ("DELETE", SESSION),
    ]:
        reply = await signed_in.request(method, path, headers={"Origin": "http://evil.example"})
        _refused(reply, 403, "Origin")
    # The cross-site sign-out did nothing: the session still works.
    assert (await signed_in.get("/api/admin/me")).status_code == 200
    # Reads are not writes: a cross-origin GET is answered (the browser keeps it from the page).
    reply = await signed_in.get(BUDGETS, headers={"Origin": "http://evil.example"})
    assert reply.status_code == 200


async def test_bearer_calls_need_no_origin_but_a_json_body(gateway: httpx.AsyncClient) -> None:
    ok = await gateway.post(BUDGETS, content=BUDGET, headers={**AS_ADMIN, **JSON})
    assert ok.status_code == 200, ok.text
    plain = await gateway.post(
        BUDGETS, content=BUDGET, headers={**AS_ADMIN, "Content-Type": "text/plain"}
    )
    _refused(plain, 415, "Content-Type")
    # A cross-origin page cannot send Authorization without CORS, which the gateway never grants;
    # an Origin from elsewhere is refused whatever the credentials.
    foreign = await gateway.post(
        BUDGETS, content=BUDGET, headers={**AS_ADMIN, **JSON, "Origin": "http://evil.example"}
    )
    _refused(foreign, 403, "Origin")


async def test_signing_in_needs_a_json_body_from_this_origin(gateway: httpx.AsyncClient) -> None:
    token = json.dumps({"token": ADMIN})
    for headers, status, field in [
        ({"Content-Type": "text/plain"}, 415, "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
        ({**JSON, "Origin": "http://evil.example"}, 403, "Origin"),
    ]:
        _refused(await gateway.post(SESSION, content=token, headers=headers), status, field)
        assert COOKIE not in gateway.cookies
    # A script or curl sends no Origin: that is fine before there is a session.
    assert (await gateway.post(SESSION, content=token, headers=JSON)).status_code == 200


async def test_allowed_origins_admit_a_proxy_that_rewrites_host(
    db: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    env = _env(
        service_env, GATEWAY_ALLOWED_ORIGINS="https://costs.example.com, http://127.0.0.1:8443"
    )
    app = create_app(GatewayConfig.from_env(env))
    async with app.router.lifespan_context(app), _client(app) as client:
        await _signed_in(client)
        for origin, status in [
            ("https://costs.example.com", 200),
            ("https://costs.example.com:443", 200),
            ("http://127.0.0.1:8443", 200),
            ("http://gateway", 200),  # its own origin still counts
            ("https://other.example.com", 403),
        ]:
            reply = await client.post(BUDGETS, content=BUDGET, headers={**JSON, "Origin": origin})
            assert reply.status_code == status, (origin, reply.text)


async def test_over_https_an_http_origin_is_another_origin(gateway_app: Starlette) -> None:
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as client:
        await client.post(SESSION, json={"token": ADMIN}, headers={"Origin": "https://gateway"})
        plain = await client.post(BUDGETS, content=BUDGET, headers={**JSON, **SAME_ORIGIN})
        _refused(plain, 403, "Origin")
        secure = {**JSON, "Origin": "https://gateway"}
        assert (await client.post(BUDGETS, content=BUDGET, headers=secure)).status_code == 200


@pytest.mark.parametrize(
    "value",
    ["costs.example.com", "https://costs.example.com/", "https://costs.example.com/admin",
     "ftp://costs.example.com", "https://", "https://a b", "*"],
)  # fmt: skip
def test_allowed_origins_must_be_origins(service_env: dict[str, str], value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        GatewayConfig.from_env(_env(service_env, GATEWAY_ALLOWED_ORIGINS=value))
    assert raised.value.variable == "GATEWAY_ALLOWED_ORIGINS"
