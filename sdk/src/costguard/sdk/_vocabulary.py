"""The cost-event names costguard prices (docs/cost-events.md), to warn about typos early.

A copy of the pricing table's ``(event_type, service, unit)`` triples: the SDK does not
depend on ``costguard.common``, and a test holds the two equal. An event with any other
names is still recorded (the rollup stores it and lists it as unpriced, with the reason);
the SDK only logs one warning per distinct unknown triple, naming the nearest known name.
"""

from __future__ import annotations

import difflib
import logging
import threading

log = logging.getLogger(__name__)

KNOWN: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("ai_api_call", "gemini_text", "tokens"),
        ("ai_api_call", "gemini_tts", "tokens"),
        ("ai_api_call", "gemini_image", "images"),
        ("ai_api_call", "openai_image", "images"),
        ("ai_api_call", "openai_tts", "characters"),
        ("ai_api_call", "openai_transcription", "seconds"),
        ("s3_operation", "s3_put", "requests"),
        ("s3_operation", "s3_copy", "requests"),
        ("s3_operation", "s3_list", "requests"),
        ("s3_operation", "s3_get", "requests"),
        ("s3_operation", "s3_head", "requests"),
        ("s3_operation", "s3_delete", "requests"),
        ("ses_email", "ses", "emails"),
        ("sqs_message", "sqs", "messages"),
        ("lambda_invocation", "lambda", "requests"),
    }
)
_EVENT_TYPES = sorted({event_type for event_type, _, _ in KNOWN})
_SERVICES = {
    event_type: sorted(service for known, service, _ in KNOWN if known == event_type)
    for event_type in _EVENT_TYPES
}
_UNITS = {(event_type, service): unit for event_type, service, unit in KNOWN}
# Distinct unknown triples warned about; past this many, no more warnings (a program that
# makes up names as it goes must not grow this set, or the log, without bound).
_MAX_WARNED = 1_000

_warned: set[tuple[str, str, str]] = set()
_lock = threading.Lock()


def _nearest(name: str, candidates: list[str]) -> str:
    return (difflib.get_close_matches(name, candidates, n=1, cutoff=0.0) or candidates)[0]


def problem(event_type: str, service: str, unit: str) -> str | None:
    """What is unknown about the names, with the nearest known one; ``None`` if known."""
    if (event_type, service, unit) in KNOWN:
        return None
    if event_type not in _SERVICES:
        near = _nearest(event_type, _EVENT_TYPES)
        return f"cost event type {event_type!r} is not known (did you mean {near!r}?)"
    expected = _UNITS.get((event_type, service))
    if expected is None:
        near = _nearest(service, _SERVICES[event_type])
        return (
            f"cost event service {service!r} is not known for event type {event_type!r}"
            f" (did you mean {near!r}?)"
        )
    return (
        f"cost event unit {unit!r} is not known for {event_type!r}/{service!r}"
        f" (did you mean {expected!r}?)"
    )


def check(event_type: str, service: str, unit: str) -> None:
    """Log a warning, once per distinct triple, when the names are not known; never raises."""
    triple = (event_type, service, unit)
    if triple in KNOWN:
        return
    with _lock:
        if triple in _warned or len(_warned) >= _MAX_WARNED:
            return
        _warned.add(triple)
    found = problem(event_type, service, unit)
    if found is not None:
        log.warning("%s: it is stored but not priced", found)
