"""The ``python -m costguard.<service>`` entry point shared by every service."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from costguard.common.config import ConfigError, CoreConfig
from costguard.common.logging import configure_logging
from costguard.common.probe import Unreachable

SETTINGS_DOC = "the Configuration table of costguard's README.md"


class HasCore(Protocol):
    @property
    def core(self) -> CoreConfig: ...


C = TypeVar("C", bound=HasCore)
T = TypeVar("T")


def usage(module: str, summary: str, variables: Sequence[str]) -> str:
    about = (
        f"{summary} It takes no arguments: its settings are environment variables, among "
        f"them {', '.join(variables)}; every one is described in {SETTINGS_DOC}."
    )
    return f"usage: python -m {module}\n\n{textwrap.fill(about, 88)}\n"


def refuse_arguments(
    module: str, summary: str, variables: Sequence[str], argv: Sequence[str] | None = None
) -> None:
    """A service takes no arguments, so anything given is a mistake (``--help``, a
    sub-command meant for another module): say where the settings are and never serve.
    ``--help`` exits 0; anything else exits 2."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        return
    text = usage(module, summary, variables)
    if list(args) in (["-h"], ["--help"]):
        print(text, end="")
        raise SystemExit(0)
    print(f"{text}\npython -m {module}: unexpected arguments: {' '.join(args)}", file=sys.stderr)
    raise SystemExit(2)


def load_config_or_exit(load_config: Callable[[Mapping[str, str]], C]) -> C:
    """Read config once from the environment; on a bad variable print one line and exit 2."""
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"costguard: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(config.core.service, config.core.log_level)
    return config


def run_or_exit(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``; Postgres or Redis found unreachable at start-up is one line
    naming the variable, and exit 2 (as for a malformed variable)."""
    try:
        return asyncio.run(main)
    except Unreachable as exc:
        print(f"costguard: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_service(
    load_config: Callable[[Mapping[str, str]], C],
    serve: Callable[[C], Coroutine[Any, Any, None]],
) -> None:
    run_or_exit(serve(load_config_or_exit(load_config)))
