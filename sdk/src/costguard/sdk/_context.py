"""Who the current work is for: a context variable that instrumentation reads.

``job_telemetry`` sets it for the length of a job, and ``user_context`` sets it for any
block, so LLM calls and AWS operations made inside are attributed to the same user,
tier, episode and podcast without passing them around.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class UserContext:
    """Who a job or call is for, and how to attribute its cost."""

    user_id: str
    tier: str
    domain: str = "default"
    job_type: str = ""
    queued_at: datetime | None = None
    attempt: int = 1
    episode_id: str = ""
    podcast_id: str = ""
    entities: dict[str, str] = field(default_factory=dict)
    reservation_id: str = ""  # from a throttle check: the job's telemetry settles it
    context_type: str = ""  # what LLM calls made for it are for: "insight", "chat", ...


_current: ContextVar[UserContext | None] = ContextVar("costguard_user_context", default=None)


def current_user_context() -> UserContext | None:
    """The context set by the innermost ``user_context`` or ``job_telemetry`` block."""
    return _current.get()


def bind_user_context(ctx: UserContext) -> Token[UserContext | None]:
    return _current.set(ctx)


def reset_user_context(token: Token[UserContext | None]) -> None:
    _current.reset(token)


@contextmanager
def user_context(ctx: UserContext) -> Iterator[UserContext]:
    """Attribute every event recorded inside the block to ``ctx``."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
