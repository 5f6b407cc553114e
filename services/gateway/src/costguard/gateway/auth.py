"""Admin authentication: bearer tokens compared by SHA-256 digest in constant time."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from costguard.gateway.config import AdminToken


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def identify(tokens: tuple[AdminToken, ...], presented: str) -> AdminToken | None:
    digest = hash_token(presented)
    found = None
    for token in tokens:  # no early exit: every entry is compared
        if hmac.compare_digest(digest, token.sha256):
            found = token
    return found


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer ") and len(header) > len("Bearer "):
        return header.removeprefix("Bearer ")
    return None
