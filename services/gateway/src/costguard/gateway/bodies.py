"""The one reader of request bodies: bounded, then parsed as strict JSON into an object.

Python's json module turns some hostile bodies into exceptions a handler would answer with a
500: an integer literal of more than 4,300 digits raises ValueError (int()'s guard against
quadratic conversion, CVE-2020-10735), and nesting a few thousand deep raises
RecursionError. So every limit is checked before json.loads could fail that way, or inside
it through its hooks:

- at most ``MAX_BODY_BYTES``, from Content-Length before reading and again while reading, so
  that no more than the limit is ever held (413);
- at most ``MAX_DEPTH`` nested arrays and objects, counted by one pass over the bytes
  before parsing (400);
- integer literals of at most ``MAX_INT_DIGITS`` digits; no NaN or Infinity, no number
  beyond a double (400);
- UTF-8 only, as RFC 8259 requires of JSON exchanged between systems, and no unpaired
  surrogate escape such as ``"\\ud800"`` (it cannot be encoded back to UTF-8) (400).

Every refusal is a BadInput naming the field ``body``. The content type is checked before
any handler runs, for every route (``csrf.SameOriginWrites``).
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from starlette.requests import Request

from costguard.gateway.params import BadInput

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_INT_DIGITS = 20  # a bigint cap (19 digits) and its sign fit; nothing the API takes is longer

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPENERS, _CLOSERS = frozenset(b"[{"), frozenset(b"]}")


def _too_large() -> NoReturn:
    raise BadInput("body", f"the body must be at most {MAX_BODY_BYTES} bytes", status=413)


async def _bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise BadInput("body", "Content-Length must be a number of bytes")
        if len(declared) > len(str(MAX_BODY_BYTES)) or int(declared) > MAX_BODY_BYTES:
            _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            _too_large()
    return bytes(body)


def nesting_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` in ``raw``: brackets and braces
    inside strings do not count (a backslash escapes the byte after it). One pass, no
    recursion; UTF-8 never puts these ASCII bytes inside a multi-byte character."""
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSERS:
            depth -= 1
    return False


def _integer(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise BadInput("body", f"integers in the body have at most {MAX_INT_DIGITS} digits")
    return int(literal)


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise BadInput("body", "a number in the body is too large")
    return value


def _constant(name: str) -> NoReturn:
    raise BadInput("body", f"{name} is not JSON: numbers in the body must be finite")


def parse_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, within the limits above (but the size, which reading checks)."""
    if nesting_depth_exceeds(raw, MAX_DEPTH):
        raise BadInput("body", f"the body nests arrays and objects more than {MAX_DEPTH} deep")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("body", "the body must be UTF-8") from None
    try:
        body = json.loads(text, parse_int=_integer, parse_float=_finite, parse_constant=_constant)
    except json.JSONDecodeError:
        raise BadInput("body", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadInput("body", "the body must be a JSON object")
    try:
        # The answer may echo a key or a value; one that cannot be UTF-8 must not reach it.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("body", "the body holds an unpaired surrogate escape") from None
    return body


async def json_object(request: Request) -> dict[str, Any]:
    """The request's body, read within ``MAX_BODY_BYTES``, as a JSON object."""
    return parse_object(await _bounded_body(request))
