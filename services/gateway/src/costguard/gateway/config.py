from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from costguard.common.config import ConfigError, CoreConfig, Env, is_loopback
from costguard.gateway.user_days import RANGE_DAYS

T = TypeVar("T")
_TOKEN_ENTRY = re.compile(r"^([A-Za-z0-9_.@-]{1,64}):(admin|viewer):([0-9a-f]{64})$")
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalized_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None when ``value``
    is not an http(s) origin (a path, a wildcard, ``null``)."""
    match = _ORIGIN.fullmatch(value.strip().lower())
    if match is None:
        return None
    scheme, host, port = match["scheme"], match["host"], match["port"]
    if port is not None and not 0 < int(port) <= 65535:
        return None
    if port is None or int(port) == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{int(port)}"


@dataclass(frozen=True)
class AdminToken:
    """A configured credential: who, which role, and the SHA-256 of the token (never the token)."""

    name: str
    role: str
    sha256: str


@dataclass(frozen=True)
class GatewayConfig:
    core: CoreConfig
    database_url: str
    redis_url: str
    host: str
    port: int
    telemetry_addr: str
    throttle_addr: str
    rollup_addr: str
    admin_tokens: tuple[AdminToken, ...]
    session_secret: str | None
    webhook_url: str | None
    webhook_secret: str | None
    alert_dispatch_s: float
    web_dist: str | None
    # Origins besides the gateway's own whose pages may write with the session cookie
    # (csrf.py): the public origin, when a proxy in front rewrites Host.
    allowed_origins: tuple[str, ...]
    # Days of every user's cost held in memory for the top users (``user_days``).
    top_users_days: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GatewayConfig:
        env = Env(environ)
        listen = env.listen_address("GATEWAY_LISTEN", "127.0.0.1:8080")
        host, _, port = listen.rpartition(":")
        admin_tokens = _admin_tokens(env)
        session_secret = env.optional_str("GATEWAY_SESSION_SECRET")
        _require_credentials_beyond_loopback(listen, admin_tokens, session_secret)
        return cls(
            core=CoreConfig.from_env("gateway", env, default_port=0, serves_grpc=False),
            database_url=env.database_url(),
            redis_url=env.redis_url(),
            host=host.strip("[]"),
            port=int(port),
            telemetry_addr=env.listen_address("TELEMETRY_ADDR", "127.0.0.1:50051"),
            throttle_addr=env.listen_address("THROTTLE_ADDR", "127.0.0.1:50052"),
            rollup_addr=env.listen_address("ROLLUP_ADDR", "127.0.0.1:50053"),
            admin_tokens=admin_tokens,
            session_secret=session_secret,
            webhook_url=_webhook_url(env),
            webhook_secret=env.optional_str("ALERT_WEBHOOK_SECRET"),
            alert_dispatch_s=env.number("ALERT_DISPATCH_SECONDS", 5.0, minimum=0.1),
            web_dist=env.optional_str("GATEWAY_WEB_DIST"),
            allowed_origins=_allowed_origins(env),
            top_users_days=env.integer("GATEWAY_TOP_USERS_DAYS", 184, minimum=RANGE_DAYS),
        )


def _require_credentials_beyond_loopback(
    listen: str, admin_tokens: tuple[AdminToken, ...], session_secret: str | None
) -> None:
    """A gateway other machines reach is a deployment, and one started without its secrets:
    with no admin token nobody can sign in, and with a per-process session secret each
    restart, and each other replica behind the load balancer, signs everyone out."""
    if is_loopback(listen):
        return
    missing = [
        name
        for name, value in (
            ("COSTGUARD_ADMIN_TOKENS", admin_tokens),
            ("GATEWAY_SESSION_SECRET", session_secret),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            "GATEWAY_LISTEN",
            f"{listen} is reachable from other machines, so {' and '.join(missing)} "
            f"must be set (or listen on 127.0.0.1)",
        )


def _webhook_url(env: Env) -> str | None:
    value = env.optional_str("ALERT_WEBHOOK_URL")
    if value is not None and not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError("ALERT_WEBHOOK_URL", "expected an http(s):// URL")
    return value


def _entries(
    env: Env, name: str, parse: Callable[[str], T | None], problem: Callable[[str], str]
) -> tuple[T, ...]:
    """The comma-separated entries of ``name``, each read by ``parse`` (``None``: refused,
    with ``problem(entry)``); none when it is unset."""
    value = env.raw(name)
    if value is None:
        return ()
    parsed = []
    for entry in (raw.strip() for raw in value.split(",")):
        item = parse(entry)
        if item is None:
            raise ConfigError(name, problem(entry))
        parsed.append(item)
    return tuple(parsed)


def _admin_token(entry: str) -> AdminToken | None:
    match = _TOKEN_ENTRY.match(entry)
    return AdminToken(*match.groups()) if match else None


def _admin_tokens(env: Env) -> tuple[AdminToken, ...]:
    """``COSTGUARD_ADMIN_TOKENS``: comma-separated ``name:role:sha256hex`` entries."""
    return _entries(
        env,
        "COSTGUARD_ADMIN_TOKENS",
        _admin_token,
        lambda _: "expected comma-separated name:role:sha256hex entries (role admin or viewer)",
    )


def _allowed_origins(env: Env) -> tuple[str, ...]:
    """``GATEWAY_ALLOWED_ORIGINS``: comma-separated ``scheme://host[:port]`` origins."""
    return _entries(
        env,
        "GATEWAY_ALLOWED_ORIGINS",
        normalized_origin,
        lambda entry: f"{entry!r} is not an origin: expected http(s)://host[:port], no path",
    )
