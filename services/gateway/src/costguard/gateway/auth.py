"""Admin authentication: bearer tokens or a signed session cookie.

Tokens are configured only as SHA-256 digests and compared in constant time. The
dashboard signs in once with a token and then carries an HttpOnly, SameSite=Strict
session cookie: ``name:role:expiry`` signed with HMAC-SHA256 under the session secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.gateway.config import AdminToken

COOKIE = "costguard_session"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Admin:
    name: str
    role: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def identify(tokens: tuple[AdminToken, ...], presented: str) -> AdminToken | None:
    digest = hash_token(presented)
    found = None
    for token in tokens:  # no early exit: every entry is compared
        if hmac.compare_digest(digest, token.sha256):
            found = token
    return found


def _sign(secret: bytes, payload: bytes) -> str:
    return (
        base64.urlsafe_b64encode(hmac.new(secret, payload, hashlib.sha256).digest())
        .decode()
        .rstrip("=")
    )


def session_value(secret: bytes, admin: Admin, now: float | None = None) -> str:
    expiry = int((now or time.time()) + SESSION_SECONDS)
    payload = f"{admin.name}:{admin.role}:{expiry}".encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _sign(secret, payload)


def read_session(secret: bytes, value: str, now: float | None = None) -> Admin | None:
    encoded, _, signature = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    # As bytes: compare_digest refuses a str holding a non-ASCII character (a cookie can).
    if not hmac.compare_digest(_sign(secret, payload).encode(), signature.encode(errors="replace")):
        return None
    try:
        name, role, expiry = payload.decode().rsplit(":", 2)
        if int(expiry) < (now or time.time()):
            return None
    except ValueError:
        return None
    return Admin(name, role)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer ") and len(header) > len("Bearer "):
        return header.removeprefix("Bearer ")
    return None


def current_admin(request: Request) -> Admin | None:
    resources = request.app.state.resources
    presented = _bearer(request)
    if presented is not None:
        token = identify(resources.config.admin_tokens, presented)
        return Admin(token.name, token.role) if token else None
    cookie = request.cookies.get(COOKIE)
    return read_session(resources.session_secret, cookie) if cookie else None


Handler = Callable[[Request], Awaitable[Response]]


def admin_only(handler: Handler) -> Handler:
    """401 without credentials, 403 without the admin role; the admin is request.state.admin."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        admin = current_admin(request)
        if admin is None:
            return JSONResponse(
                {"error": "sign in: send Authorization: Bearer <admin token>"}, status_code=401
            )
        if admin.role != "admin":
            return JSONResponse({"error": "the admin role is required"}, status_code=403)
        request.state.admin = admin
        return await handler(request)

    return guarded
