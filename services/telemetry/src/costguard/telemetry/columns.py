"""Rows for a whole batch at once: the checks of ``rows.py``, a field of every event at a time.

``RowBuilder`` reads each field of an event through a check of ``checks.py``: a few Python
calls a field, most of ingest's own time. Here each field of the batch is read into a list
once and checked with builtins that loop in C (``min``, ``max``, ``all``, a set, a joined
string). These checks only clear: an event any of them doubts goes through ``RowBuilder``,
which rejects it naming the field or builds its row, so every rejection is ``RowBuilder``'s
own. An event they clear gets the row ``RowBuilder`` would build, but for its ``event_id``:
the text the client sent (a UUID in canonical form, which Postgres reads as the same
UUID), not a ``uuid.UUID`` made of it. tests/test_ingest_columns.py holds the two together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter, gt, methodcaller
from typing import Any

from costguard.common.event_ranges import MAXIMUM
from costguard.telemetry.checks import MAX_FUTURE, MAX_LENGTH, Rejected
from costguard.telemetry.rows import DEFAULT_CONTEXT_TYPE, Row, RowBuilder

Built = Row | Rejected  # what each event of a batch becomes

# The canonical form of a UUID: any other spelling (upper case, braces, no hyphens) is left
# to RowBuilder, where uuid.UUID decides; this one is stored as sent.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_YEAR_2000 = 946_684_800  # checks.moment's earliest plausible second
_NANOS = 1_000_000_000


def _read(messages: Sequence[Any], name: str) -> list[Any]:
    return list(map(attrgetter(name), messages))


def _doubtful_ids(ids: list[str]) -> Iterable[int]:
    match = _CANONICAL_UUID.fullmatch
    return [i for i, value in enumerate(ids) if match(value) is None]


def _doubtful_text(values: list[str], name: str, *, required: bool) -> Iterable[int]:
    limit = MAX_LENGTH[name]
    if (
        (not required or all(values))
        and max(map(len, values)) <= limit
        and "\x00" not in "".join(values)
    ):
        return ()
    return [
        i
        for i, value in enumerate(values)
        if (required and not value) or len(value) > limit or "\x00" in value
    ]


def _doubtful_counts(values: list[int], name: str) -> Iterable[int]:
    limit = MAXIMUM[name]
    if min(values) >= 0 and max(values) <= limit:
        return ()
    return [i for i, value in enumerate(values) if value < 0 or value > limit]


def _doubtful_parts(parts: list[int], wholes: list[int]) -> Iterable[int]:
    """A part (cached input tokens, say) above its whole (input tokens, which include it)."""
    if not any(map(gt, parts, wholes)):
        return ()
    return [i for i, (part, whole) in enumerate(zip(parts, wholes, strict=True)) if part > whole]


def _doubtful_tiers(values: list[str], tiers: tuple[str, ...]) -> Iterable[int]:
    if set(values).issubset(tiers):
        return ()
    return [i for i, value in enumerate(values) if value not in tiers]


class _Moments:
    """One timestamp field of the batch: which events have it, and its microseconds."""

    def __init__(self, messages: Sequence[Any], name: str) -> None:
        self.present: list[bool] = list(map(methodcaller("HasField", name), messages))
        self.any = any(self.present)
        stamps = _read(messages, name) if self.any else []
        self.seconds: list[int] = [s.seconds for s in stamps]
        self.nanos: list[int] = [s.nanos for s in stamps]

    def doubtful(self, latest: float) -> Iterable[int]:
        """As checks.moment: a present time before 2000, past ``latest`` or with nanos out of
        range."""
        if not self.any:
            return ()
        return [
            i
            for i, (has, s, n) in enumerate(
                zip(self.present, self.seconds, self.nanos, strict=True)
            )
            if has and (s < _YEAR_2000 or s > latest or not 0 <= n < _NANOS)
        ]

    def micros(self) -> list[int | None]:
        """Each present time in whole microseconds (what Postgres keeps), else None."""
        if not self.any:
            return [None] * len(self.present)
        return [
            s * 1_000_000 + n // 1000 if has else None
            for has, s, n in zip(self.present, self.seconds, self.nanos, strict=True)
        ]


def _datetimes(micros: list[int | None]) -> list[datetime | None]:
    epoch, delta = _EPOCH, timedelta
    return [None if m is None else epoch + delta(microseconds=m) for m in micros]


def _out_of_order(*moments: _Moments) -> Iterable[int]:
    """As checks.in_order: an event whose present times are not in order."""
    if sum(m.any for m in moments) < 2:
        return ()
    doubtful = []
    for i, times in enumerate(zip(*(m.micros() for m in moments), strict=True)):
        present = [t for t in times if t is not None]
        if present != sorted(present):
            doubtful.append(i)
    return doubtful


def _optional(values: list[str]) -> list[str | None]:
    return [value or None for value in values]


def _or(values: list[Any], default: Any) -> list[Any]:
    return [value or default for value in values]


class _Batch:
    """The fields of a batch's events, each read once into a list, and the events the
    checks doubt."""

    def __init__(
        self, events: Sequence[Any], fields: Iterable[str], moments: Iterable[str]
    ) -> None:
        self.events = events
        self.values = {name: _read(events, name) for name in fields}
        self.moments = {name: _Moments(events, name) for name in moments}
        self.doubtful: set[int] = set(_doubtful_ids(self.values["event_id"]))

    def check(
        self,
        builder: RowBuilder,
        text: dict[str, bool],
        counts: Iterable[str],
        order: Sequence[str],
    ) -> None:
        """Doubt each event that fails one of ``RowBuilder``'s checks, or might."""
        doubtful = self.doubtful
        for name, required in text.items():
            doubtful.update(_doubtful_text(self.values[name], name, required=required))
        doubtful.update(_doubtful_tiers(self.values["tier"], builder.tiers))
        for name in counts:
            doubtful.update(_doubtful_counts(self.values[name], name))
        latest = builder.received_at.timestamp() + MAX_FUTURE.total_seconds()
        for moments in self.moments.values():
            doubtful.update(moments.doubtful(latest))
        doubtful.update(_out_of_order(*(self.moments[name] for name in order)))

    def cleared(self) -> Callable[[str], list[Any]]:
        """A field's values of the events no check doubts; a time field as datetimes."""
        keep = [i for i in range(len(self.events)) if i not in self.doubtful]

        def column(name: str) -> list[Any]:
            moments = self.moments.get(name)
            values = self.values[name] if moments is None else moments.micros()
            if self.doubtful:
                values = [values[i] for i in keep]
            return values if moments is None else _datetimes(values)

        return column

    def rows(self, build_one: Callable[[Any], Row], cleared: Iterable[Row]) -> list[Built]:
        """The cleared rows, and each doubtful event's own, in the order of the events."""
        if not self.doubtful:
            return list(cleared)
        clear = iter(cleared)
        out: list[Built] = []
        for i, event in enumerate(self.events):
            if i in self.doubtful:
                try:
                    out.append(build_one(event))
                except Rejected as exc:
                    out.append(exc)
            else:
                out.append(next(clear))
        return out


_JOB_TEXT = {  # name: required
    "job_name": True,
    "user_id": True,
    "domain": False,
    "job_type": False,
    "error_code": False,
    "episode_id": False,
    "podcast_id": False,
    "reservation_id": False,
    "job_id": False,
}
_JOB_COUNTS = (
    "duration_ms",
    "queue_wait_ms",
    "cpu_ms",
    "mem_mb_peak",
    "rows_read",
    "rows_written",
    "attempt",
)
_JOB_ORDER = ("queued_at", "started_at", "finished_at")
_JOB_FIELDS = ("event_id", "tier", "success", *_JOB_TEXT, *_JOB_COUNTS)


def job_rows(builder: RowBuilder, events: Sequence[Any]) -> list[Built]:
    """What ``builder.job`` makes of each event, in order."""
    if not events:
        return []
    batch = _Batch(events, _JOB_FIELDS, (*_JOB_ORDER, "created_at"))
    batch.check(builder, _JOB_TEXT, _JOB_COUNTS, _JOB_ORDER)
    column = batch.cleared()
    cleared = zip(
        column("event_id"),
        column("job_name"),
        column("user_id"),
        column("tier"),
        _or(column("domain"), "default"),
        _optional(column("job_type")),
        column("queued_at"),
        column("started_at"),
        column("finished_at"),
        column("duration_ms"),
        column("queue_wait_ms"),
        column("cpu_ms"),
        column("mem_mb_peak"),
        column("rows_read"),
        column("rows_written"),
        _or(column("attempt"), 1),
        column("success"),
        _optional(column("error_code")),
        _optional(column("episode_id")),
        _optional(column("podcast_id")),
        _or(column("created_at"), builder.received_at),
        _optional(column("reservation_id")),
        _optional(column("job_id")),
        strict=True,
    )
    return batch.rows(builder.job, cleared)


_LLM_TEXT = {
    "user_id": True,
    "domain": False,
    "job_name": False,
    "provider": False,
    "llm_model": True,
    "operation": False,
    "insight_key": False,
    "error_code": False,
    "episode_id": False,
    "podcast_id": False,
    "reservation_id": False,
    "context_type": False,
}
_LLM_COUNTS = (
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "output_image_tokens",
    "duration_ms",
)
_LLM_PARTS = (
    ("cached_input_tokens", "input_tokens"),
    ("reasoning_tokens", "output_tokens"),
    ("output_image_tokens", "output_tokens"),
)
_LLM_FIELDS = (
    "event_id", "tier", "usage_reported", "cache_hit", "success", *_LLM_TEXT, *_LLM_COUNTS
)  # fmt: skip


def llm_rows(builder: RowBuilder, events: Sequence[Any]) -> list[Built]:
    """What ``builder.llm`` makes of each event, in order."""
    if not events:
        return []
    batch = _Batch(events, _LLM_FIELDS, ("created_at",))
    batch.check(builder, _LLM_TEXT, _LLM_COUNTS, ())
    for part, whole in _LLM_PARTS:
        batch.doubtful.update(_doubtful_parts(batch.values[part], batch.values[whole]))
    column = batch.cleared()
    cleared = zip(
        column("event_id"),
        column("user_id"),
        column("tier"),
        _or(column("domain"), "default"),
        _optional(column("job_name")),
        _or(column("provider"), "openai"),
        column("llm_model"),
        _or(column("operation"), "chat.completions"),
        column("input_tokens"),
        column("cached_input_tokens"),
        column("output_tokens"),
        column("reasoning_tokens"),
        column("usage_reported"),
        column("duration_ms"),
        column("cache_hit"),
        _optional(column("insight_key")),
        column("success"),
        _optional(column("error_code")),
        _optional(column("episode_id")),
        _optional(column("podcast_id")),
        _or(column("created_at"), builder.received_at),
        _optional(column("reservation_id")),
        _or(column("context_type"), DEFAULT_CONTEXT_TYPE),
        column("output_image_tokens"),
        strict=True,
    )
    return batch.rows(builder.llm, cleared)


def cost_rows(builder: RowBuilder, events: Sequence[Any]) -> list[Built]:
    """What ``builder.cost`` makes of each event, one at a time: their metadata, a JSON
    document each, is most of their work, and no column check would spare it."""
    out: list[Built] = []
    for event in events:
        try:
            out.append(builder.cost(event))
        except Rejected as exc:
            out.append(exc)
    return out


BUILDERS: dict[str, Callable[[RowBuilder, Sequence[Any]], list[Built]]] = {
    "job": job_rows,
    "llm": llm_rows,
    "cost": cost_rows,
}
