"""One vocabulary of error codes for every instrumented client, and the transport failures
under them.

``LlmCall.error_code`` says why a call failed in the same words whichever provider it went
to, so that a dashboard can count rate limits or timeouts across providers: ``http_<status>``
for an HTTP error status (``http_429``, ``http_500``); ``timeout``; ``connection_error``;
``invalid_response`` when the body did not parse; ``api_error`` for an error the API sent
inside a stream; ``cancelled`` when the caller's task was cancelled; otherwise the
exception's class name (as ``job_telemetry`` does). Each client maps its own exceptions
onto these words; the failures of the HTTP libraries underneath (httpx, httpx2, aiohttp)
are classified here once, for all of them.

Only libraries already imported are looked at (an exception cannot come from a library
that was never loaded), so nothing here imports an HTTP library or needs one installed.
"""

from __future__ import annotations

import asyncio
import sys

MAX_ERROR_CODE_LENGTH = 64  # the width of telemetry_llm_events.error_code
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
INVALID_RESPONSE = "invalid_response"
API_ERROR = "api_error"
CANCELLED = "cancelled"

_HTTPX_FAMILY = ("httpx", "httpx2")  # httpx2 is a fork of httpx with the same classes
# Failures that mean the request never reached the provider whole: nothing can have been
# billed. A timeout or a dropped connection after that may have been.
_HTTPX_NOT_SENT = (
    "ConnectError",
    "ConnectTimeout",
    "PoolTimeout",
    "WriteError",
    "WriteTimeout",
    "UnsupportedProtocol",
    "ProxyError",
    "LocalProtocolError",
)
_AIOHTTP_NOT_SENT = ("ClientConnectorError", "ConnectionTimeoutError")


def http_error(status: int) -> str:
    return clipped(f"http_{status}")


def clipped(code: str) -> str:
    return code[:MAX_ERROR_CODE_LENGTH]


def other_error(exc: BaseException) -> str:
    """The code of an exception no client maps: ``cancelled``, else its class name."""
    if isinstance(exc, asyncio.CancelledError):
        return CANCELLED
    return clipped(type(exc).__name__)


_Classes = tuple[type[BaseException], ...]


def _loaded(module: str, *names: str) -> _Classes:
    found = sys.modules.get(module)
    classes = [getattr(found, name, None) for name in names] if found is not None else []
    return tuple(c for c in classes if isinstance(c, type) and issubclass(c, BaseException))


def _httpx(*names: str) -> _Classes:
    return tuple(c for module in _HTTPX_FAMILY for c in _loaded(module, *names))


def transport_error(exc: BaseException) -> str | None:
    """``timeout`` or ``connection_error`` for a failure of the HTTP transport (httpx,
    httpx2, aiohttp, or the built-in ``TimeoutError`` and ``ConnectionError``); ``None``
    for anything else."""
    # Timeouts first: every httpx timeout is also a TransportError, and aiohttp's (which
    # are built-in TimeoutErrors) are connection errors too.
    timeouts: _Classes = (TimeoutError, *_httpx("TimeoutException"))
    if isinstance(exc, timeouts):
        return TIMEOUT
    connection: _Classes = (
        ConnectionError,
        *_httpx("TransportError"),
        *_loaded("aiohttp", "ClientConnectionError", "ClientPayloadError"),
    )
    if isinstance(exc, connection):
        return CONNECTION_ERROR
    return None


def never_sent(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a transport failure from before the request was written whole
    (the connection was refused, never opened in time, or broke while sending)."""
    if exc is None:
        return False
    not_sent: _Classes = (
        ConnectionRefusedError,
        *_httpx(*_HTTPX_NOT_SENT),
        *_loaded("aiohttp", *_AIOHTTP_NOT_SENT),
    )
    return isinstance(exc, not_sent)
