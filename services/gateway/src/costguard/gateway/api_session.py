"""Sign in with an admin token; the dashboard then carries a session cookie, which sign-out
revokes (``auth``: the session is recorded in Redis)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.gateway.auth import (
    COOKIE,
    SESSION_SECONDS,
    Admin,
    close_session,
    current_admin,
    identify,
    open_session,
)
from costguard.gateway.bodies import json_object
from costguard.gateway.params import BadInput
from costguard.gateway.resources import resources


async def sign_in(request: Request) -> Response:
    body = await json_object(request)
    token = body.get("token")
    if not isinstance(token, str) or not token or len(token) > 512:
        raise BadInput("token", "token must be the admin token, as a string")
    res = resources(request)
    found = identify(res.config.admin_tokens, token)
    if found is None:
        return JSONResponse({"error": "invalid token", "field": "token"}, status_code=401)
    admin = Admin(found.name, found.role)
    # A browser signing in again replaces its session: the one it held ends here.
    await close_session(res, request.cookies.get(COOKIE))
    response = JSONResponse({"name": admin.name, "role": admin.role})
    response.set_cookie(
        COOKIE,
        await open_session(res, admin),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def sign_out(request: Request) -> Response:
    await close_session(resources(request), request.cookies.get(COOKIE))
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


async def me(request: Request) -> Response:
    admin = await current_admin(request)
    if admin is None:
        return JSONResponse({"error": "not signed in"}, status_code=401)
    res = resources(request)
    # The dashboard computes "this month" and "last month" from the server's today, in the
    # reporting time zone, not from the browser's clock and zone.
    return JSONResponse(
        {
            "name": admin.name,
            "role": admin.role,
            "timezone": res.config.core.timezone.key,
            "today": res.now().date().isoformat(),
        }
    )
