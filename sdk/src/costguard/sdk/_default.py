"""The process-wide client that module-level SDK functions use."""

from __future__ import annotations

import os

from costguard.sdk._client import TelemetryClient


class _Default:
    client: TelemetryClient | None = None


def configure(
    target: str | None = None, *, token: str | None = None, durable: bool | None = None
) -> TelemetryClient:
    """Set up the default client.

    ``target`` defaults to ``COSTGUARD_TELEMETRY_ADDR`` (``127.0.0.1:50051``), ``token``
    to ``COSTGUARD_SERVICE_TOKEN`` and ``durable`` to ``COSTGUARD_DURABLE`` (``1`` or
    ``true``: journal every event to disk before recording returns, fsynced every
    ``COSTGUARD_DURABLE_FSYNC_MS``, default 50). Call once at start-up; later calls
    replace the client. A malformed setting raises ``ValueError`` naming it.
    """
    _Default.client = TelemetryClient(
        target or os.environ.get("COSTGUARD_TELEMETRY_ADDR", "127.0.0.1:50051"),
        token=token if token is not None else os.environ.get("COSTGUARD_SERVICE_TOKEN"),
        durable=durable if durable is not None else _flag("COSTGUARD_DURABLE"),
        fsync_interval_s=_milliseconds("COSTGUARD_DURABLE_FSYNC_MS", 50) / 1000,
    )
    return _Default.client


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise ValueError(f"{name} must be 1, 0, true or false, not {value!r}")


def _milliseconds(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 60_000:
        raise ValueError(f"{name} must be a whole number of milliseconds, 1 to 60000")
    return int(value)


def default_client() -> TelemetryClient:
    return _Default.client if _Default.client is not None else configure()


async def flush() -> None:
    """Send every buffered event now."""
    if _Default.client is not None:
        await _Default.client.flush()


def flush_blocking(timeout_s: float = 30.0) -> bool:
    """``flush`` for sync code (a script, a worker thread, a Lambda handler): deliver every
    buffered event now and wait, up to ``timeout_s``; True when nothing is left, else what
    is left is in the spill folder. On a thread running an event loop it only warns and
    returns False: use ``await flush()`` there. See ``TelemetryClient.flush_blocking``.
    """
    client = _Default.client
    return client.flush_blocking(timeout_s) if client is not None else True


async def close() -> None:
    """Flush and close the default client."""
    client, _Default.client = _Default.client, None
    if client is not None:
        await client.close()
