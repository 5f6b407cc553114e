"""The request id an application's calls to costguard carry as ``x-request-id`` metadata.

Inside ``with request_id("abc"):`` every throttle check, ``mark_episode_complete`` and
explicit ``flush`` sends that id, so the services' log lines for those calls carry it too.
Events shipped in the background belong to many requests at once and carry none: the
service gives each batch its own. The SDK keeps its own ContextVar because it does not
depend on ``costguard.common``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

HEADER = "x-request-id"

_current: ContextVar[str | None] = ContextVar("costguard_request_id", default=None)


@contextmanager
def request_id(value: str) -> Iterator[str]:
    """Send ``value`` as the request id of every costguard call made inside the block."""
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


def current_request_id() -> str | None:
    """The id set by the innermost ``request_id`` block, if any."""
    return _current.get()


def forget_request_id() -> None:
    """Clear the id in the current context (a background task's own copy)."""
    _current.set(None)


def with_request_id(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``metadata`` plus the current request id, when one is set."""
    rid = _current.get()
    return (*metadata, (HEADER, rid)) if rid else metadata
