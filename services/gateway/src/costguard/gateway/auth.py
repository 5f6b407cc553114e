"""Admin authentication: bearer tokens or a session cookie that sign-out revokes.

Tokens are configured only as SHA-256 digests and compared in constant time. The
dashboard signs in once with a token and then carries an HttpOnly, SameSite=Strict
session cookie: ``id:name:role:expiry`` signed with HMAC-SHA256 under the session secret,
where ``id`` is random. The signature alone is not enough: the session must also still be
recorded in Redis (``cg:session:<sha256 of id>``, expiring with it), which sign-in writes
and sign-out deletes, so a signed-out cookie is refused even before it expires. Losing
Redis signs everyone out, the safe direction. Bearer tokens need no record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.gateway.config import AdminToken
from costguard.gateway.resources import Resources

COOKIE = "costguard_session"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Admin:
    name: str
    role: str


@dataclass(frozen=True)
class Session:
    """What a session cookie carries, signed."""

    id: str
    admin: Admin
    expiry: int  # Unix time


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


def session_key(session_id: str) -> str:
    # A digest, not the id: what Redis holds is not the cookie's secret part.
    return f"cg:session:{hashlib.sha256(session_id.encode()).hexdigest()}"


def session_value(secret: bytes, session: Session) -> str:
    admin = session.admin
    payload = f"{session.id}:{admin.name}:{admin.role}:{session.expiry}".encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _sign(secret, payload)


def read_session(secret: bytes, value: str, now: float | None = None) -> Session | None:
    """The session ``value`` signs, if its signature holds and it has not expired (whether
    it was revoked is Redis's to say: ``current_admin``)."""
    encoded, _, signature = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    # As bytes: compare_digest refuses a str holding a non-ASCII character (a cookie can).
    if not hmac.compare_digest(_sign(secret, payload).encode(), signature.encode(errors="replace")):
        return None
    try:
        session_id, name, role, expiry = payload.decode().split(":")
        if int(expiry) < (now or time.time()):
            return None
    except ValueError:  # a cookie of the stateless kind this replaced, too
        return None
    return Session(session_id, Admin(name, role), int(expiry))


async def open_session(res: Resources, admin: Admin) -> str:
    """Record a new session for ``admin``; the cookie value that carries it."""
    session = Session(secrets.token_urlsafe(32), admin, int(time.time()) + SESSION_SECONDS)
    await res.redis.set(session_key(session.id), f"{admin.name}:{admin.role}", ex=SESSION_SECONDS)
    return session_value(res.session_secret, session)


async def close_session(res: Resources, cookie: str | None) -> None:
    """Revoke the session ``cookie`` carries, if it carries one."""
    session = read_session(res.session_secret, cookie) if cookie else None
    if session is not None:
        await res.redis.delete(session_key(session.id))


def bearer_token(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization", "")
    if header.startswith("Bearer ") and len(header) > len("Bearer "):
        return header.removeprefix("Bearer ")
    return None


async def current_admin(request: Request) -> Admin | None:
    """Who the request is from: a bearer token if it has one, else a live session cookie.

    Redis unreachable raises redis's ConnectionError or TimeoutError (the app answers 503).
    """
    res: Resources = request.app.state.resources
    presented = bearer_token(request.headers)
    if presented is not None:
        token = identify(res.config.admin_tokens, presented)
        return Admin(token.name, token.role) if token else None
    cookie = request.cookies.get(COOKIE)
    session = read_session(res.session_secret, cookie) if cookie else None
    if session is None or not await res.redis.exists(session_key(session.id)):
        return None
    return session.admin


Handler = Callable[[Request], Awaitable[Response]]


def admin_only(handler: Handler) -> Handler:
    """401 without credentials, 403 without the admin role; the admin is request.state.admin."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        admin = await current_admin(request)
        if admin is None:
            return JSONResponse(
                {"error": "sign in: send Authorization: Bearer <admin token>"}, status_code=401
            )
        if admin.role != "admin":
            return JSONResponse({"error": "the admin role is required"}, status_code=403)
        request.state.admin = admin
        return await handler(request)

    return guarded
