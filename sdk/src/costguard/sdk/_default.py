"""The process-wide client that module-level SDK functions use."""

from __future__ import annotations

import os

from costguard.sdk._client import TelemetryClient


class _Default:
    client: TelemetryClient | None = None


def configure(target: str | None = None, *, token: str | None = None) -> TelemetryClient:
    """Set up the default client.

    ``target`` defaults to ``COSTGUARD_TELEMETRY_ADDR`` (``127.0.0.1:50051``) and ``token``
    to ``COSTGUARD_SERVICE_TOKEN``. Call once at start-up; later calls replace the client.
    """
    _Default.client = TelemetryClient(
        target or os.environ.get("COSTGUARD_TELEMETRY_ADDR", "127.0.0.1:50051"),
        token=token if token is not None else os.environ.get("COSTGUARD_SERVICE_TOKEN"),
    )
    return _Default.client


def default_client() -> TelemetryClient:
    return _Default.client if _Default.client is not None else configure()


async def flush() -> None:
    """Send every buffered event now."""
    if _Default.client is not None:
        await _Default.client.flush()


async def close() -> None:
    """Flush and close the default client."""
    client, _Default.client = _Default.client, None
    if client is not None:
        await client.close()
