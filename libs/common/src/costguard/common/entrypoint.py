"""The ``python -m costguard.<service>`` entry point shared by every service."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

from costguard.common.config import ConfigError, CoreConfig
from costguard.common.logging import configure_logging


class HasCore(Protocol):
    @property
    def core(self) -> CoreConfig: ...


C = TypeVar("C", bound=HasCore)


def load_config_or_exit(load_config: Callable[[Mapping[str, str]], C]) -> C:
    """Read config once from the environment; on a bad variable print one line and exit 2."""
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"costguard: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(config.core.service, config.core.log_level)
    return config


def run_service(
    load_config: Callable[[Mapping[str, str]], C],
    serve: Callable[[C], Coroutine[Any, Any, None]],
) -> None:
    asyncio.run(serve(load_config_or_exit(load_config)))
