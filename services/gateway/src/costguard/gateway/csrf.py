"""Cross-site request forgery: a write that the session cookie signs in must come from here.

A browser attaches the session cookie by itself, so a page elsewhere could make it write: a
form, or a ``fetch`` in ``no-cors`` mode, may POST a ``text/plain`` body without asking the
gateway first. SameSite=Strict already keeps the cookie off requests from other sites; this
also refuses other origins of the same site (another port, a sibling host), and browsers
that ignore SameSite. For every unsafe method (POST, PUT, PATCH, DELETE):

- an ``Origin`` header must be this gateway's own origin (the scheme and ``Host`` the request
  came with; https too when it came over http, from a proxy that terminates TLS) or one
  listed in ``GATEWAY_ALLOWED_ORIGINS``, whatever the credentials: a page elsewhere cannot
  send a bearer token without CORS, which the gateway never grants;
- a request signed in by the cookie (no bearer token) without ``Origin`` must carry
  ``Sec-Fetch-Site: same-origin``; with neither, nothing proves where it came from;
- a request with a body must declare ``Content-Type: application/json`` (UTF-8), which no
  form can send and which a page elsewhere cannot send without a CORS preflight.

Refusals are JSON: 403 naming ``Origin``, 415 naming ``Content-Type``.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from costguard.gateway.auth import COOKIE, bearer_token
from costguard.gateway.config import normalized_origin

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _own_origins(scope: Scope, headers: Headers) -> set[str | None]:
    """The origin the request was sent to: its scheme and Host. Over plain HTTP, the same
    host over HTTPS too: a proxy in front that terminates TLS passes Host through, but the
    scheme it was asked for reaches the gateway only from a proxy uvicorn trusts."""
    host = headers.get("host")
    if host is None and scope.get("server"):
        server_host, server_port = scope["server"]
        host = f"{server_host}:{server_port}"
    if not host:
        return set()
    schemes = ("http", "https") if scope["scheme"] == "http" else (scope["scheme"],)
    return {normalized_origin(f"{scheme}://{host}") for scheme in schemes}


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media_type, *parameters = content_type.split(";")
    if media_type.strip().lower() != "application/json":
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _has_body(headers: Headers) -> bool:
    # "0" and "00" declare no body; anything else does, a malformed length too (the body
    # reader refuses that one).
    declared = headers.get("content-length", "0").strip()
    return "transfer-encoding" in headers or declared.lstrip("0") != ""


class SameOriginWrites:
    """Pure ASGI middleware: refuses a cross-site write before any handler sees it."""

    def __init__(self, app: ASGIApp, allowed_origins: tuple[str, ...] = ()) -> None:
        self._app = app
        self._allowed = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self._app(scope, receive, send)
            return
        refusal = self._refusal(scope, Headers(scope=scope))
        if refusal is None:
            await self._app(scope, receive, send)
            return
        status, field, error = refusal
        await JSONResponse({"error": error, "field": field}, status_code=status)(
            scope, receive, send
        )

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        origin = headers.get("origin")
        if origin is not None:
            found = normalized_origin(origin)
            if found is None or not (
                found in self._allowed or found in _own_origins(scope, headers)
            ):
                return 403, "Origin", "a write from another origin is refused"
        elif (
            bearer_token(headers) is None
            and COOKIE in cookie_parser(headers.get("cookie", ""))
            and headers.get("sec-fetch-site") != "same-origin"
        ):
            return (
                403,
                "Origin",
                "a write signed in by the session cookie needs an Origin header (or "
                "Sec-Fetch-Site: same-origin) showing it comes from the dashboard",
            )
        if _has_body(headers) and not _is_json(headers.get("content-type")):
            return 415, "Content-Type", "send the body as Content-Type: application/json"
        return None
