"""The rendered ``deploy/k8s/overlays/dev`` started for real with ``podman kube play``.

Podman 4.3 plays Pods, Deployments and ConfigMaps, and ignores Services, Jobs, CronJobs,
HPAs, PDBs and NetworkPolicies; an in-file Secret does not parse. So this module transforms
the rendered objects, never the files in ``deploy/k8s``:

- the Secret becomes a podman secret of the same name (a JSON map of key to base64 value),
  which ``envFrom: secretRef`` reads;
- each Deployment is played on its own, on one podman network, with its Service's name as
  a network alias (no Services, so that is how ``postgres:5432`` and ``telemetry:50051``
  resolve); the image tags the overlay names are given to the images compose built;
- the Job ``migrate`` and the CronJob ``rollup-nightly`` become Pods of their pod templates
  (``restartPolicy: Never``) and are waited on for exit 0;
- podman runs no probes, so each container's own readinessProbe (``grpc``, ``httpGet``,
  ``exec``, ``tcpSocket``) is run inside it until it passes: that is "ready".

What this proves and what it does not is in docs/operations.md ("The manifests, started").
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from costguard.devstack.containers import ROOT, WORK_DIR, CommandFailed, Timeline, poll, run

OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "dev"
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
NETWORK = "costguard-e2e-k8s"
IGNORED = {"Namespace", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
IGNORED |= {"NetworkPolicy"}
IMAGES = ("telemetry", "throttle", "rollup", "gateway", "migrate")
# The Job and the CronJob, run once as Pods of these names.
MIGRATE, ROLLUP_ONCE = "migrate", "rollup-nightly-once"
ONCE = (MIGRATE, ROLLUP_ONCE)
# In a pod's container: exit 0 when the gRPC server on the port answers SERVING.
GRPC_PROBE = (
    "import asyncio, sys\n"
    "from grpc import aio\n"
    "from costguard.common.health import health_status\n"
    "async def main(address):\n"
    "    async with aio.insecure_channel(address) as channel:\n"
    "        return await health_status(channel)\n"
    "sys.exit(0 if asyncio.run(main(sys.argv[1])) == 'SERVING' else 1)\n"
)
HTTP_PROBE = (
    "import sys, urllib.request\n"
    "urllib.request.urlopen(sys.argv[1], timeout=3)\n"
)  # fmt: skip
TCP_PROBE = "import socket, sys\nsocket.create_connection(('127.0.0.1', int(sys.argv[1])), 3)\n"


class Yaml12Loader(yaml.SafeLoader):
    """kustomize writes YAML 1.2, where ``2026-01-02`` and ``no`` are strings; PyYAML reads
    1.1, where they are a date and false. This loader reads them as kustomize meant."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


async def rendered() -> list[dict[str, Any]]:
    """``kubectl kustomize`` of the dev overlay, as objects."""
    text = (await run(KUBECTL, "kustomize", OVERLAY)).out
    return [doc for doc in yaml.load_all(text, Loader=Yaml12Loader) if doc]


def secret_json(secret: dict[str, Any]) -> str:
    """A Kubernetes Secret as podman's kube play reads a podman secret: key -> base64."""
    data = dict(secret.get("data") or {})
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    return json.dumps(data)


def as_pod(name: str, template: dict[str, Any]) -> dict[str, Any]:
    """A Job's or CronJob's pod template as a Pod that runs once."""
    spec = dict(template["spec"])
    spec["restartPolicy"] = "Never"
    labels = (template.get("metadata") or {}).get("labels") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]
    if obj["kind"] == "Deployment":
        return dict(spec["template"]["spec"])
    return spec


def probe_command(container: dict[str, Any]) -> list[str] | None:
    """The container's readinessProbe as a command to run inside it."""
    probe = container.get("readinessProbe")
    if not probe:
        return None
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}

    def port(value: int | str) -> int:
        return int(ports[value]) if isinstance(value, str) else int(value)

    if "exec" in probe:
        return [str(word) for word in probe["exec"]["command"]]
    if "grpc" in probe:
        return ["python", "-c", GRPC_PROBE, f"127.0.0.1:{port(probe['grpc']['port'])}"]
    if "httpGet" in probe:
        get = probe["httpGet"]
        return ["python", "-c", HTTP_PROBE, f"http://127.0.0.1:{port(get['port'])}{get['path']}"]
    if "tcpSocket" in probe:
        return ["python", "-c", TCP_PROBE, str(port(probe["tcpSocket"]["port"]))]
    raise CommandFailed(f"{container['name']}: a readinessProbe of a kind not known here")


QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``512Mi``, ``1G``, ``1048576``) in bytes."""
    for suffix, factor in QUANTITY.items():
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * factor
    return int(quantity)


def expected_settings(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """What ``podman inspect`` must show of a container the manifest constrains."""
    security = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    expected: dict[str, str] = {}
    if "runAsUser" in security:
        group = security.get("runAsGroup")
        expected["{{.Config.User}}"] = f"{security['runAsUser']}" + (
            f":{group}" if group is not None else ""
        )
    if security.get("readOnlyRootFilesystem"):
        expected["{{.HostConfig.ReadonlyRootfs}}"] = "true"
    memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if memory:
        expected["{{.HostConfig.Memory}}"] = str(memory_bytes(str(memory)))
    return expected


class KubePlay:
    """The dev overlay on podman: what was started, so that it can all be removed."""

    def __init__(self, objects: Iterable[dict[str, Any]]) -> None:
        self.objects = list(objects)
        self.played: dict[str, str] = {}  # a Deployment's name: its pod's id
        self.folder = WORK_DIR / "kube"
        self.configmaps = self.folder / "configmaps.yaml"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        return found

    async def prepare(self) -> None:
        kinds = {obj["kind"] for obj in self.objects}
        unknown = kinds - IGNORED - {"Secret", "ConfigMap", "Deployment", "Job", "CronJob"}
        if unknown:
            raise CommandFailed(f"the overlay has objects this check cannot play: {unknown}")
        self.folder.mkdir(parents=True, exist_ok=True)
        for image in IMAGES:
            await run("podman", "tag", f"costguard/{image}:local", f"costguard/{image}:dev")
        await self.remove()
        # Internal: the pods reach one another and nothing beyond this machine, and no port
        # of theirs is published on the host.
        await run("podman", "network", "create", "--internal", NETWORK)
        (secret,) = self.of_kind("Secret")
        await run(
            "podman", "secret", "create", secret["metadata"]["name"], "-",
            stdin=secret_json(secret).encode(),
        )  # fmt: skip
        self.configmaps.write_text(yaml.safe_dump_all(self.of_kind("ConfigMap")))

    async def play(self, obj: dict[str, Any], alias: str | None = None) -> str:
        """Play one Deployment or Pod on the network; returns the pod's id."""
        path = self.folder / f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(obj))
        network = f"{NETWORK}:alias={alias}" if alias else NETWORK
        played = await run(
            "podman", "kube", "play", "--replace", "--network", network,
            "--configmap", self.configmaps, path,
        )  # fmt: skip
        # It prints "Pod:" and the pod's id, then "Container:" and the containers' ids.
        lines = played.out.split()
        return lines[lines.index("Pod:") + 1]

    async def container(self, pod: str, name: str) -> str:
        """The podman name of container ``name`` in ``pod`` (``<pod name>-<name>``)."""
        names = await run("podman", "ps", "-a", "--filter", f"pod={pod}", "--format", "{{.Names}}")
        found = [each for each in names.out.split() if each.endswith(f"-{name}")]
        if len(found) != 1:
            raise CommandFailed(f"no single container {name} in pod {pod}: {names.out.split()}")
        return found[0]

    async def ready(self, deployment: str) -> None:
        """Play a Deployment and run each container's readinessProbe in it until it passes."""
        obj = self.named("Deployment", deployment)
        pod = self.played[deployment] = await self.play(obj, alias=deployment)
        for container in pod_spec(obj)["containers"]:
            command = probe_command(container)
            if command is None:
                raise CommandFailed(f"{deployment}/{container['name']} has no readinessProbe")
            name = await self.container(pod, container["name"])
            for field, value in expected_settings(pod_spec(obj), container).items():
                shown = (await run("podman", "inspect", "-f", field, name)).out.strip()
                if shown != value:
                    raise CommandFailed(f"{name}: {field} is {shown!r}, the manifest says {value}")
            try:
                await poll(
                    f"{deployment}'s readinessProbe",
                    ["podman", "exec", name, *command],
                    timeout_s=120,
                    every_s=1.0,
                )
            except CommandFailed as exc:
                logs = await run("podman", "logs", "--tail", "20", name, check=False)
                tail = (logs.out + logs.err)[-3000:]
                raise CommandFailed(f"{exc}\n{name}'s log:\n{tail}") from None

    async def run_once(self, name: str, template: dict[str, Any]) -> str:
        """A pod template run once as a Pod; fails unless its container exits 0."""
        obj = as_pod(name, template)
        pod = await self.play(obj)
        (container,) = obj["spec"]["containers"]
        name_in_podman = await self.container(pod, container["name"])
        code = (await run("podman", "wait", name_in_podman, timeout_s=600)).out.strip()
        logs = await run("podman", "logs", name_in_podman, check=False)
        if code != "0":
            raise CommandFailed(f"{name} exited {code}:\n{(logs.out + logs.err)[-2000:]}")
        return logs.out + logs.err

    async def sql(self, query: str) -> str:
        container = await self.container(self.played["postgres"], "postgres")
        reply = await run(
            "podman", "exec", container, "psql", "-U", "costguard", "-d", "costguard",
            "-tAc", query,
        )  # fmt: skip
        return reply.out.strip()

    async def gateway_readyz(self) -> dict[str, Any]:
        container = await self.container(self.played["gateway"], "gateway")
        reply = await run(
            "podman", "exec", container, "python", "-c",
            "import urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1:8080/readyz', timeout=5).read().decode())",
        )  # fmt: skip
        answer: dict[str, Any] = json.loads(reply.out)
        return answer

    def pod_names(self) -> list[str]:
        """Every pod this check plays (podman names a Deployment's ``<name>-pod-0``)."""
        names = [f"{obj['metadata']['name']}-pod-0" for obj in self.of_kind("Deployment")]
        return [*names, *ONCE]

    async def remove(self) -> None:
        """The pods by name (a failed play can leave one with no infra container, on no
        network), then the network and the secret."""
        # One at a time: podman 4.3 removing pods in parallel leaves some behind, empty.
        # Killed at once: their data is thrown away, and a graceful stop waits out each
        # service's drain (SHUTDOWN_GRACE_SECONDS) for nothing.
        for name in self.pod_names():
            await run("podman", "pod", "rm", "-f", "--time", "0", name, check=False)
        await run("podman", "network", "rm", "-f", NETWORK, check=False)
        for obj in self.of_kind("Secret"):
            await run("podman", "secret", "rm", obj["metadata"]["name"], check=False)
        left = [
            n
            for n in self.pod_names()
            if (await run("podman", "pod", "exists", n, check=False)).code == 0
        ]
        if left:
            raise CommandFailed(f"pods left after removing them: {left}")


async def kube_checks(timeline: Timeline) -> None:
    play = KubePlay(await rendered())
    try:
        async with timeline.step("k8s: render the dev overlay, podman secret and network"):
            await play.prepare()
        async with timeline.step("k8s: postgres and redis Deployments ready"):
            await asyncio.gather(play.ready("postgres"), play.ready("redis"))
        async with timeline.step("k8s: the migrate Job, as a Pod, exits 0"):
            await play.run_once(MIGRATE, play.named("Job", "migrate")["spec"]["template"])
            tables = await play.sql("SELECT count(*) FROM schema_migrations")
            if int(tables) < 1:
                raise CommandFailed(f"no migration recorded after the Job: {tables}")
        async with timeline.step("k8s: telemetry, throttle, rollup Deployments ready"):
            await asyncio.gather(
                *(play.ready(name) for name in ("telemetry", "throttle", "rollup"))
            )
        async with timeline.step("k8s: gateway Deployment ready, /readyz ready"):
            await play.ready("gateway")
            answer = await play.gateway_readyz()
            if answer.get("ready") is not True:
                raise CommandFailed(f"the gateway's /readyz: {answer}")
        async with timeline.step("k8s: the CronJob's command, run once as a Pod, rolls up"):
            cronjob = play.named("CronJob", "rollup-nightly")
            await play.run_once(ROLLUP_ONCE, cronjob["spec"]["jobTemplate"]["spec"]["template"])
            runs = await play.sql(
                "SELECT count(*) FROM rollup_runs WHERE trigger = 'cli' AND status = 'succeeded'"
            )
            if runs != "1":
                raise CommandFailed(f"rollup_runs after the CronJob's command: {runs} succeeded")
    finally:
        async with timeline.step("k8s: remove the pods, network and secret"):
            await play.remove()
