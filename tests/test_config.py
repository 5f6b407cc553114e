"""Config is read once, strictly; every error names its variable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from costguard.common.config import ConfigError, CoreConfig, Env
from costguard.devstack import DevStack
from costguard.gateway.config import GatewayConfig
from costguard.telemetry.config import TelemetryConfig

_TELEMETRY_ENV = {"DATABASE_URL": "postgresql://u@h:5432/d", "REDIS_URL": "redis://h:6379/0"}


def test_defaults() -> None:
    core = CoreConfig.from_env("telemetry", Env({}), default_port=50051)
    assert core.grpc_listen == "127.0.0.1:50051"
    assert core.tiers == ("free", "pro", "enterprise")
    assert str(core.timezone) == "UTC"
    assert core.service_token is None


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("1", True), ("FALSE", False), ("0", False)]
)
def test_flags_are_strict(raw: str, value: bool) -> None:
    assert Env({"X": raw}).flag("X", default=not value) is value


@pytest.mark.parametrize(
    ("environ", "call", "message"),
    [
        ({"X": "yes"}, lambda e: e.flag("X", False), "X: expected true, false, 1 or 0, got 'yes'"),
        ({"X": "12a"}, lambda e: e.integer("X", 1), "X: expected an integer, got '12a'"),
        ({"X": "-3"}, lambda e: e.integer("X", 1), "X: expected an integer >= 0, got -3"),
        ({"X": "nan"}, lambda e: e.decimal("X", "1"), "X: expected a finite decimal >= 0"),
        ({"X": "free,Pro"}, lambda e: e.names("X", ()), "X: 'Pro' is not a valid name"),
        ({"X": "free,free"}, lambda e: e.names("X", ()), "X: lists a name twice"),
        ({"X": "localhost"}, lambda e: e.listen_address("X", ""), "X: expected host:port"),
        ({"X": "redis://h:99999/0"}, lambda e: e.redis_url("X"), "X: has an invalid port"),
        ({"X": "memcached://h"}, lambda e: e.redis_url("X"), "X: expected redis://host:port/db"),
        (
            {"X": "redis+cluster://h:6379/2"},
            lambda e: e.redis_url("X"),
            "X: a Redis Cluster has only database 0",
        ),
        (
            {"X": "redis+cluster:///tmp/redis.sock"},
            lambda e: e.redis_url("X"),
            "X: expected redis+cluster://host:port (any one node)",
        ),
        ({"X": "rediss+cluster://h:0x1"}, lambda e: e.redis_url("X"), "X: has an invalid port"),
        ({}, lambda e: e.database_url(), "DATABASE_URL: is required but not set"),
    ],
)
def test_errors_name_the_variable(
    environ: dict[str, str], call: Callable[[Env], object], message: str
) -> None:
    with pytest.raises(ConfigError) as failure:
        call(Env(environ))
    assert str(failure.value).startswith(message)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:6379/0",
        "rediss://:pw@h:6380/1",
        "unix:///run/redis.sock",
        "redis+cluster://h:7000",
        "rediss+cluster://user:pw@h:7000/0",
    ],
)
def test_redis_urls_name_one_server_or_a_cluster(url: str) -> None:
    assert Env({"REDIS_URL": url}).redis_url() == url


def test_the_otlp_default_tier_is_one_of_the_tiers() -> None:
    config = TelemetryConfig.from_env({**_TELEMETRY_ENV, "COSTGUARD_TIERS": "team,pro"})
    assert config.otlp_defaults.tier == "team"
    environ = {**_TELEMETRY_ENV, "COSTGUARD_TIERS": "team,pro", "OTLP_DEFAULT_TIER": "free"}
    with pytest.raises(ConfigError) as failure:
        TelemetryConfig.from_env(environ)
    assert failure.value.variable == "OTLP_DEFAULT_TIER"
    assert str(failure.value) == (
        "OTLP_DEFAULT_TIER: 'free' is not one of COSTGUARD_TIERS (team, pro)"
    )


def test_the_otlp_http_port_is_a_port() -> None:
    assert TelemetryConfig.from_env(_TELEMETRY_ENV).otlp_http_port == 4318
    with pytest.raises(ConfigError) as failure:
        TelemetryConfig.from_env({**_TELEMETRY_ENV, "OTLP_HTTP_PORT": "70000"})
    assert str(failure.value) == (
        "OTLP_HTTP_PORT: expected an integer between 0 and 65535, got 70000"
    )


def test_tiers_keep_their_order() -> None:
    core = CoreConfig.from_env("x", Env({"COSTGUARD_TIERS": "free, team ,pro"}), default_port=1)
    assert core.tiers == ("free", "team", "pro")


def test_admin_tokens_are_hashes_with_roles() -> None:
    digest = "a" * 64
    env = {
        "DATABASE_URL": "postgresql://u@h/db",
        "REDIS_URL": "redis://h:6379/0",
        "COSTGUARD_ADMIN_TOKENS": f"ops:admin:{digest}, viewer1:viewer:{'b' * 64}",
    }
    config = GatewayConfig.from_env(env)
    assert [(t.name, t.role) for t in config.admin_tokens] == [
        ("ops", "admin"),
        ("viewer1", "viewer"),
    ]
    with pytest.raises(ConfigError, match="COSTGUARD_ADMIN_TOKENS"):
        GatewayConfig.from_env({**env, "COSTGUARD_ADMIN_TOKENS": "ops:admin:plaintext-token"})


def test_postgres_runs_as_an_unprivileged_user(stack: DevStack) -> None:
    pid_file = Path(stack.postgres.data_dir) / "pgdata" / "postmaster.pid"
    pid = int(pid_file.read_text().splitlines()[0])
    owner = Path(f"/proc/{pid}").stat().st_uid
    assert owner != 0
    if os.geteuid() != 0:
        assert owner == os.geteuid()


GATEWAY_ENV = {"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": "redis://h:6379/0"}


def test_servers_listen_on_loopback_unless_told_otherwise() -> None:
    assert GatewayConfig.from_env(GATEWAY_ENV).host == "127.0.0.1"
    for listen in ("127.0.0.1:1", "127.0.0.2:1", "localhost:1", "[::1]:1"):
        core = CoreConfig.from_env("x", Env({"GRPC_LISTEN": listen}), default_port=1)
        assert core.grpc_listen == listen
        assert GatewayConfig.from_env({**GATEWAY_ENV, "GATEWAY_LISTEN": listen}).port == 1


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "svc:1"])
def test_a_grpc_server_other_machines_reach_needs_the_service_token(listen: str) -> None:
    with pytest.raises(ConfigError) as failure:
        CoreConfig.from_env("x", Env({"GRPC_LISTEN": listen}), default_port=1)
    assert failure.value.variable == "GRPC_LISTEN"
    assert str(failure.value) == (
        f"GRPC_LISTEN: {listen} is reachable from other machines, so COSTGUARD_SERVICE_TOKEN "
        "must be set (or listen on 127.0.0.1)"
    )
    env = Env({"GRPC_LISTEN": listen, "COSTGUARD_SERVICE_TOKEN": "t"})
    assert CoreConfig.from_env("x", env, default_port=1).grpc_listen == listen
    # The gateway binds GATEWAY_LISTEN, never GRPC_LISTEN: a shared setting does not stop it.
    assert GatewayConfig.from_env({**GATEWAY_ENV, "GRPC_LISTEN": listen}).port == 8080


def test_a_gateway_other_machines_reach_needs_admin_tokens_and_a_session_secret() -> None:
    tokens = {"COSTGUARD_ADMIN_TOKENS": f"ops:admin:{'a' * 64}"}
    secret = {"GATEWAY_SESSION_SECRET": "s" * 32}
    open_to_all = {**GATEWAY_ENV, "GATEWAY_LISTEN": "0.0.0.0:8080"}
    for given, missing in (
        ({}, "COSTGUARD_ADMIN_TOKENS and GATEWAY_SESSION_SECRET"),
        (tokens, "GATEWAY_SESSION_SECRET"),
        (secret, "COSTGUARD_ADMIN_TOKENS"),
    ):
        with pytest.raises(ConfigError) as failure:
            GatewayConfig.from_env({**open_to_all, **given})
        assert str(failure.value) == (
            f"GATEWAY_LISTEN: 0.0.0.0:8080 is reachable from other machines, so {missing} "
            "must be set (or listen on 127.0.0.1)"
        )
    config = GatewayConfig.from_env({**open_to_all, **tokens, **secret})
    assert (config.host, config.port) == ("0.0.0.0", 8080)
