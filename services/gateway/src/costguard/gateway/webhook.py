"""Alerts by webhook: Slack-compatible JSON, signed, retried with back-off, logged.

The signature is ``X-Costguard-Signature: v1=<hex>``, HMAC-SHA256 under the webhook secret
over ``<X-Costguard-Timestamp>.<body>``, so a receiver can check the body is ours and
recent. Every delivery (with its attempts) is written to ``alert_deliveries``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from prometheus_client import Counter

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

ALERTS = Counter(
    "costguard_gateway_alerts",
    "Webhook alerts, by kind (crossed, resolved, test) and result (sent, failed)",
    ["kind", "result"],
)


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    status: int | None
    attempts: int
    error: str | None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def slack_body(kind: str, text: str, fields: dict[str, str]) -> dict[str, Any]:
    colour = {"crossed": "#d9480f", "resolved": "#2b8a3e"}.get(kind, "#1c7ed6")
    return {
        "text": text,
        "attachments": [
            {
                "color": colour,
                "fields": [{"title": k, "value": v, "short": True} for k, v in fields.items()],
            }
        ],
        "costguard": {"kind": kind, **fields},
    }


class WebhookSender:
    def __init__(
        self,
        url: str | None,
        secret: str | None,
        client: httpx.AsyncClient,
        pool: asyncpg.Pool,
        *,
        attempts: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        self.url = url
        self._secret = secret or ""
        self._client = client
        self._pool = pool
        self._attempts = attempts
        self._backoff_s = backoff_s

    async def send(
        self, kind: str, text: str, fields: dict[str, str], *, alert_id: int | None = None
    ) -> Delivery:
        assert self.url is not None, "no webhook configured"
        body = json.dumps(slack_body(kind, text, fields)).encode()
        status: int | None = None
        error: str | None = None
        attempt = 0
        for attempt in range(1, self._attempts + 1):
            timestamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "x-costguard-timestamp": timestamp,
                "x-costguard-signature": signature(self._secret, timestamp, body),
            }
            try:
                reply = await self._client.post(self.url, content=body, headers=headers, timeout=10)
                status, error = reply.status_code, None
                if reply.status_code < 300:
                    break
                error = f"HTTP {reply.status_code}"
                if reply.status_code not in _RETRY_STATUSES:
                    break
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"[:500]
            if attempt < self._attempts:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
        delivered = error is None
        ALERTS.labels(kind, "sent" if delivered else "failed").inc()
        await self._pool.execute(
            "INSERT INTO alert_deliveries (alert_id, kind, url_host, status, attempts, error) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            alert_id,
            kind,
            urlsplit(self.url).hostname or "",
            status,
            attempt,
            error,
        )
        if not delivered:
            log.warning(
                "alert not delivered", extra={"kind": kind, "status": status, "error": error}
            )
        return Delivery(delivered, status, attempt, error)
