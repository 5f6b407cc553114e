"""Per HTTP request: a request id for logs and gRPC calls, request metrics, and the
browser's security headers on every response.

The id comes from the caller's ``X-Request-ID`` header when it is usable, else a new one;
it is set in the ``request_id`` ContextVar (every log line of the request carries it, and
``call_metadata`` sends it on to the services) and returned in the response's
``X-Request-ID``. Requests are counted by route template (``/api/admin/cost/episodes/
{episode_id}``, never the id itself), method and status, so the labels stay bounded.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from costguard.common.logging import request_id
from costguard.common.request_ids import HEADER, acceptable, new_request_id

HTTP_REQUESTS = Counter(
    "costguard_gateway_http_requests",
    "HTTP requests, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "costguard_gateway_http_request_seconds",
    "Time to answer an HTTP request, by route template",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# The dashboard is built to need nothing more (web/index.html holds no inline script or style,
# the charts style elements through the CSSOM, which style-src does not govern): scripts,
# styles, fetches only from the gateway itself, images also as data: URLs (the favicon).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
BROWSER_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class RequestContext:
    """Pure ASGI middleware, so the ContextVar it sets is the handler's own."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(HEADER.encode(), b"").decode("latin-1")
        rid = acceptable(sent) or new_request_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500  # what the client sees when the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            route = _route(scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
            request_id.reset(token)


class SecurityHeaders:
    """Pure ASGI middleware: ``BROWSER_HEADERS`` on every response, the dashboard's files,
    the API's answers and its errors alike.

    An unhandled error is answered here, as JSON with the headers, and then re-raised:
    Starlette's ServerErrorMiddleware sits outside every middleware, and would otherwise
    answer a bare text 500; it still logs the error, and sees the answer already started.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in BROWSER_HEADERS.items():
                    headers[name] = value
            await send(message)

        try:
            await self._app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                failed = JSONResponse({"error": "internal error"}, status_code=500)
                await failed(scope, receive, send_with_headers)
            raise
