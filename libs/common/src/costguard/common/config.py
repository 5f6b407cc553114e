"""Configuration read once from environment variables.

Every service builds a frozen dataclass from ``os.environ`` at start-up. A missing or
malformed variable raises :class:`ConfigError` naming it, and the entry point turns that
into one line on stderr and a non-zero exit (issue 2: "Bad configuration stops a service
at start with one clear line naming the variable").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIERS = ("free", "pro", "enterprise")
# REDIS_URL schemes naming a Redis Cluster, and the scheme of its nodes (TCP or TLS).
REDIS_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class ConfigError(ValueError):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Env:
    """Strict typed reads from one environment mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def string(self, name: str, default: str | None = None) -> str:
        value = self.raw(name)
        if value is not None:
            return value
        if default is None:
            raise ConfigError(name, "is required but not set")
        return default

    def optional_str(self, name: str) -> str | None:
        return self.raw(name)

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"expected an integer, got {value!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigError(name, f"expected an integer {bounds}, got {number}")
        return number

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"expected a number, got {value!r}") from None
        if not (number >= minimum and number != float("inf")):
            raise ConfigError(name, f"expected a finite number >= {minimum}, got {value!r}")
        return number

    def decimal(self, name: str, default: str) -> Decimal:
        value = self.raw(name) or default
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ConfigError(name, f"expected a decimal number, got {value!r}") from None
        if not number.is_finite() or number < 0:
            raise ConfigError(name, f"expected a finite decimal >= 0, got {value!r}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ConfigError(name, f"expected true, false, 1 or 0, got {value!r}")

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A comma-separated list of lowercase identifiers, order kept, no duplicates."""
        value = self.raw(name)
        if value is None:
            return default
        items = tuple(part.strip() for part in value.split(","))
        for item in items:
            if not _NAME.match(item):
                raise ConfigError(name, f"{item!r} is not a valid name (a-z, 0-9, _ or -)")
        if len(set(items)) != len(items):
            raise ConfigError(name, f"lists a name twice: {value!r}")
        return items

    def timezone(self, name: str, default: str = "UTC") -> ZoneInfo:
        value = self.raw(name) or default
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(name, f"unknown time zone {value!r}") from None

    def listen_address(self, name: str, default: str) -> str:
        value = self.raw(name) or default
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(name, f"expected host:port, got {value!r}")
        return value

    def database_url(self, name: str = "DATABASE_URL") -> str:
        value = self.string(name)
        parts = urlsplit(value)
        if parts.scheme not in ("postgres", "postgresql") or not (parts.hostname or parts.query):
            raise ConfigError(
                name,
                f"expected postgresql://user:password@host:port/database, got {_redact(value)}",
            )
        _check_port(name, value)
        return value

    def redis_url(self, name: str = "REDIS_URL") -> str:
        """One server (``redis://host:port/db``, ``rediss://``, ``unix://``) or a Redis Cluster
        (``redis+cluster://host:port``, ``rediss+cluster://``: any one node; the client finds
        the others)."""
        value = self.string(name)
        parts = urlsplit(value)
        if parts.scheme in REDIS_CLUSTER_SCHEMES:
            if not parts.hostname:
                raise ConfigError(
                    name, f"expected redis+cluster://host:port (any one node), got {_redact(value)}"
                )
            if parts.path not in ("", "/", "/0"):
                raise ConfigError(
                    name, f"a Redis Cluster has only database 0, got {_redact(value)}"
                )
        elif parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            raise ConfigError(
                name,
                f"expected redis://host:port/db or redis+cluster://host:port, got {_redact(value)}",
            )
        _check_port(name, value)
        return value


def is_loopback(listen: str) -> bool:
    """Whether ``host:port`` (or ``[v6]:port``) binds only this machine."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to any interface


def _check_port(name: str, value: str) -> None:
    try:
        port = urlsplit(value).port  # reading the property is what validates it
    except ValueError:
        port = -1
    if port == -1:
        raise ConfigError(name, f"has an invalid port: {_redact(value)}")


def _redact(url: str) -> str:
    """Never echo a password into logs or error messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return repr(url)


@dataclass(frozen=True)
class CoreConfig:
    """Settings every gRPC service shares."""

    service: str
    grpc_listen: str
    service_token: str | None
    timezone: ZoneInfo
    tiers: tuple[str, ...]
    log_level: str
    shutdown_grace_s: float
    metrics_port: int = 0

    @classmethod
    def from_env(
        cls, service: str, env: Env, *, default_port: int, serves_grpc: bool = True
    ) -> CoreConfig:
        """``serves_grpc=False`` (the gateway): ``GRPC_LISTEN`` is not this process's to bind."""
        level = env.string("LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("LOG_LEVEL", f"expected DEBUG, INFO, WARNING or ERROR, got {level!r}")
        # Loopback unless told otherwise: a server anyone on the network can reach must be
        # asked for explicitly, and then it must check a token.
        grpc_listen = env.listen_address("GRPC_LISTEN", f"127.0.0.1:{default_port}")
        service_token = env.optional_str("COSTGUARD_SERVICE_TOKEN")
        if serves_grpc and service_token is None and not is_loopback(grpc_listen):
            raise ConfigError(
                "GRPC_LISTEN",
                f"{grpc_listen} is reachable from other machines, so COSTGUARD_SERVICE_TOKEN "
                "must be set (or listen on 127.0.0.1)",
            )
        return cls(
            service=service,
            grpc_listen=grpc_listen,
            service_token=service_token,
            timezone=env.timezone("COSTGUARD_TIMEZONE"),
            tiers=env.names("COSTGUARD_TIERS", DEFAULT_TIERS),
            log_level=level,
            shutdown_grace_s=env.number("SHUTDOWN_GRACE_SECONDS", 10.0),
            metrics_port=env.integer("METRICS_PORT", 9464, maximum=65535),
        )
