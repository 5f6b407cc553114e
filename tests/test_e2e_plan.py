"""What `make e2e` and `make up` on podman derive from the deploy files, checked offline.

`make e2e` itself runs the stack for real (it needs podman, so `make test` cannot); these
tests pin down the parts it reads from the compose file, the override and the rendered
manifests, so that a change to them that the staged start or `podman kube play` could not
follow fails here first.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from costguard.devstack.compose import COMPOSE_FILE, awaited, duration_s, stages
from costguard.devstack.e2e import OVERRIDE, PORTS
from costguard.devstack.kube import (
    IGNORED,
    Yaml12Loader,
    as_pod,
    expected_settings,
    memory_bytes,
    probe_command,
    rendered,
    secret_json,
)
from costguard.devstack.standins import debian_mirror


class _ComposeLoader(yaml.SafeLoader):
    """Reads the compose merge tags (`!reset`, `!override`) as the values they carry."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return {"tag": node.tag, "value": loader.construct_sequence(node)}
    if isinstance(node, yaml.MappingNode):
        return {"tag": node.tag, "value": loader.construct_mapping(node)}
    return {"tag": node.tag, "value": loader.construct_scalar(node)}  # type: ignore[arg-type]


_ComposeLoader.add_constructor("!reset", _tagged)
_ComposeLoader.add_constructor("!override", _tagged)


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=_ComposeLoader)
    return loaded


def test_the_stack_starts_in_the_order_its_depends_on_gives() -> None:
    services = _load(COMPOSE_FILE)["services"]
    assert stages(services) == [
        ["postgres", "redis"],
        ["migrate"],
        ["rollup", "telemetry", "throttle"],
        ["gateway"],
    ]
    assert awaited(services) == {
        "migrate": "completed",
        "postgres": "healthy",
        "redis": "healthy",
        "telemetry": "healthy",
        "throttle": "healthy",
        "rollup": "healthy",
    }


def test_a_dependency_cycle_is_named() -> None:
    with pytest.raises(RuntimeError, match=r"cycle among \['a', 'b'\]"):
        stages({"a": {"depends_on": {"b": {}}}, "b": {"depends_on": ["a"]}, "c": {}})


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5), (None, 7.0)]
)
def test_compose_durations(text: str | None, seconds: float) -> None:
    assert duration_s(text, 7.0) == seconds


def test_a_malformed_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="not a compose duration"):
        duration_s("soon", 1.0)


def test_the_override_keeps_every_socket_on_loopback() -> None:
    base = _load(COMPOSE_FILE)["services"]
    override = _load(OVERRIDE)["services"]
    assert set(override) == set(base)
    metrics = []
    for name, spec in override.items():
        assert spec["network_mode"] == "host", name
        hosts = {entry.split(":")[0]: entry.split(":")[1] for entry in spec["extra_hosts"]}
        assert set(hosts.values()) == {"127.0.0.1"}, name
        # Every name the compose file's addresses use resolves to loopback.
        assert {"postgres", "redis", "telemetry", "throttle", "rollup"} <= set(hosts), name
        environment = {**base[name].get("environment", {}), **spec.get("environment", {})}
        for key in ("GRPC_LISTEN", "GATEWAY_LISTEN"):
            if key in environment:
                assert environment[key].startswith("127.0.0.1:"), (name, key)
        if "METRICS_PORT" in environment:
            metrics.append(int(environment["METRICS_PORT"]))
        if "command" in spec:
            command = " ".join(spec["command"])
            assert "127.0.0.1" in command, name
            # The compose file's own command, with only the listen address added.
            assert " ".join(base[name]["command"]) in command, name
        if base[name].get("ports"):
            assert spec["ports"] == {"tag": "!reset", "value": []}, name
    assert len(metrics) == len(set(metrics)) == 4
    assert set(metrics) <= set(PORTS)


def test_the_override_replaces_the_operators_settings_file() -> None:
    """`make e2e` never reads deploy/compose/.env: each service that loads a settings file
    loads the check's own instead."""
    base = _load(COMPOSE_FILE)["services"]
    override = _load(OVERRIDE)["services"]
    for name, spec in base.items():
        if "env_file" in spec:
            assert override[name]["env_file"] == {
                "tag": "!override",
                "value": ["../../.dev/e2e/compose.env"],
            }, name


async def test_every_object_of_the_dev_overlay_is_played_or_named_as_ignored() -> None:
    objects = await rendered()
    played = {"Secret", "ConfigMap", "Deployment", "Job", "CronJob"}
    assert {obj["kind"] for obj in objects} <= played | IGNORED
    deployments = [obj for obj in objects if obj["kind"] == "Deployment"]
    assert {obj["metadata"]["name"] for obj in deployments} == {
        "postgres",
        "redis",
        "telemetry",
        "throttle",
        "rollup",
        "gateway",
    }
    for obj in deployments:
        for container in obj["spec"]["template"]["spec"]["containers"]:
            command = probe_command(container)
            assert command, obj["metadata"]["name"]
    (gateway,) = [obj for obj in deployments if obj["metadata"]["name"] == "gateway"]
    # The named port "http" is resolved to the container's 8080.
    probe = probe_command(gateway["spec"]["template"]["spec"]["containers"][0])
    assert probe is not None
    assert probe[-1] == "http://127.0.0.1:8080/readyz"


async def test_the_settings_checked_in_each_played_container_are_the_manifests() -> None:
    """make e2e compares `podman inspect` of each costguard container with these."""
    objects = await rendered()
    for obj in objects:
        if obj["kind"] != "Deployment" or obj["metadata"]["name"] in ("postgres", "redis"):
            continue
        pod = obj["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        limit = container["resources"]["limits"]["memory"]
        assert expected_settings(pod, container) == {
            "{{.Config.User}}": "10001:10001",
            "{{.HostConfig.ReadonlyRootfs}}": "true",
            "{{.HostConfig.Memory}}": str(memory_bytes(limit)),
        }, obj["metadata"]["name"]
    assert memory_bytes("512Mi") == 512 * 2**20
    assert memory_bytes("1G") == 10**9
    assert memory_bytes("1024") == 1024


async def test_the_secret_and_the_job_become_what_podman_plays() -> None:
    objects = await rendered()
    (secret,) = [obj for obj in objects if obj["kind"] == "Secret"]
    decoded = {
        key: base64.b64decode(value).decode()
        for key, value in json.loads(secret_json(secret)).items()
    }
    assert decoded == {key: str(value) for key, value in secret["stringData"].items()}
    (job,) = [obj for obj in objects if obj["kind"] == "Job"]
    pod = as_pod("migrate", job["spec"]["template"])
    assert pod["kind"] == "Pod"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"] == job["spec"]["template"]["spec"]["containers"]


def test_rendered_manifests_are_read_as_yaml_1_2() -> None:
    """kustomize leaves `no` and `2026-01-02` unquoted (strings in YAML 1.2): they must reach
    podman as the strings they are, not as false and a date."""
    text = "args: [rollup, --date, 2026-01-02]\nvalue: no\nflag: true\nport: 8080\n"
    assert yaml.load(text, Loader=Yaml12Loader) == {
        "args": ["rollup", "--date", "2026-01-02"],
        "value": "no",
        "flag": True,
        "port": 8080,
    }
    # And written back for podman, they stay strings.
    assert yaml.safe_load(yaml.safe_dump(yaml.load(text, Loader=Yaml12Loader)))["value"] == "no"


def test_the_debian_mirror_is_read_from_apt_sources(tmp_path: Path) -> None:
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    assert debian_mirror((folder,)) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb [arch=amd64] http://archive.example/debian bookworm main\n")
    assert debian_mirror((tmp_path / "missing", one_line)) == "http://archive.example/debian"
    with pytest.raises(RuntimeError, match="no Debian mirror"):
        debian_mirror((tmp_path / "missing",))
