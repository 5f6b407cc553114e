"""Start the compose stack with the engine this machine has: ``make up`` on podman.

``docker compose up -d --build --wait`` honours ``depends_on`` conditions and health checks
by itself. Podman 4.3 with podman-compose does not: it skips ``service_healthy``, never
checks ``service_completed_successfully``, trips on transitive dependencies, and runs no
health check unless asked (no systemd timers). So on podman the stack starts in stages read
from the compose file's own ``depends_on``: each stage is started with ``--no-deps``, and
the next one starts only when every service it depends on is healthy (``podman
healthcheck run``, the compose file's own check) or has exited 0 (``podman wait``).

    python -m costguard.devstack.compose up      # build, then start in stages
    python -m costguard.devstack.compose down    # stop; data stays in the named volumes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from costguard.devstack.containers import ROOT, CommandFailed, Result, poll, run

ENGINE = ROOT / "deploy" / "compose" / "engine.sh"
COMPOSE_FILE = ROOT / "deploy" / "compose" / "docker-compose.yml"
ENV_FILE = ROOT / "deploy" / "compose" / ".env"
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_s(text: str | None, default: float) -> float:
    """A compose duration (``1m30s``, ``5s``, ``500ms``) in seconds."""
    if not text:
        return default
    parts = DURATION.findall(str(text))
    if not parts:
        raise ValueError(f"not a compose duration: {text!r}")
    return sum(float(number) * SECONDS[unit] for number, unit in parts)


def stages(services: dict[str, Any]) -> list[list[str]]:
    """The services in start order: each stage depends only on earlier ones."""
    done: set[str] = set()
    order: list[list[str]] = []
    while len(done) < len(services):
        ready = sorted(
            name
            for name, spec in services.items()
            if name not in done and set(spec.get("depends_on") or {}) <= done
        )
        if not ready:
            raise CommandFailed(f"depends_on has a cycle among {sorted(set(services) - done)}")
        order.append(ready)
        done.update(ready)
    return order


def awaited(services: dict[str, Any]) -> dict[str, str]:
    """What the stack waits for of each service before starting what depends on it:
    ``healthy`` or ``completed`` (the strongest condition anyone asks of it)."""
    wanted: dict[str, str] = {}
    for spec in services.values():
        depends = spec.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {name: {"condition": "service_started"} for name in depends}
        for name, rule in depends.items():
            condition = (rule or {}).get("condition", "service_started")
            if condition == "service_completed_successfully":
                wanted[name] = "completed"
            elif condition == "service_healthy" and wanted.get(name) != "completed":
                wanted[name] = "healthy"
    return wanted


@dataclass
class Compose:
    """One compose project: its files, settings and project name, on one engine."""

    files: list[Path] = field(default_factory=lambda: [COMPOSE_FILE])
    env_file: Path = ENV_FILE
    project: str | None = None
    engine: list[str] = field(default_factory=list)
    _config: dict[str, Any] = field(default_factory=dict, repr=False)

    async def detect(self) -> list[str]:
        if not self.engine:
            found = await run(ENGINE, "--print", check=False)
            if found.code != 0:
                raise CommandFailed(found.err.strip() or "no compose engine found")
            self.engine = found.out.split()
        return self.engine

    async def __call__(self, *args: str, check: bool = True, timeout_s: float = 900) -> Result:
        engine = await self.detect()
        project = ["-p", self.project] if self.project else []
        files = [arg for path in self.files for arg in ("-f", str(path))]
        return await run(
            *engine, *project, *files, "--env-file", str(self.env_file), *args,
            check=check, timeout_s=timeout_s,
        )  # fmt: skip

    @property
    def podman(self) -> bool:
        return "podman" in " ".join(self.engine)

    async def config(self) -> dict[str, Any]:
        """The merged compose configuration (``config``), read once."""
        if not self._config:
            self._config = yaml.safe_load((await self("config")).out)
        return self._config

    async def services(self) -> dict[str, Any]:
        services: dict[str, Any] = (await self.config())["services"]
        return services

    async def container(self, service: str) -> str:
        """The name of ``service``'s container (podman-compose and docker name them apart)."""
        name = self.project or str((await self.config())["name"])
        found = await run(
            "podman", "ps", "-a", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={name}",
            "--filter", f"label=com.docker.compose.service={service}",
        )  # fmt: skip
        names = found.out.split()
        if len(names) != 1:
            raise CommandFailed(f"expected one container for {service}, found {names}")
        return names[0]

    async def build(self) -> None:
        await self("build", timeout_s=1800)

    async def up(self) -> list[list[str]]:
        """Start everything: in stages on podman, with ``--wait`` on Docker."""
        await self.detect()
        if not self.podman:
            await self("up", "-d", "--wait", timeout_s=1800)
            return [sorted(await self.services())]
        services = await self.services()
        wanted = awaited(services)
        order = stages(services)
        for stage in order:
            await self("up", "-d", "--no-deps", *stage)
            await asyncio.gather(*(self.wait(name, services[name], wanted) for name in stage))
        return order

    async def wait(self, name: str, spec: dict[str, Any], wanted: dict[str, str]) -> None:
        container = await self.container(name)
        if wanted.get(name) == "completed":
            code = (await run("podman", "wait", container, timeout_s=600)).out.strip()
            if code != "0":
                logs = await run("podman", "logs", "--tail", "20", container, check=False)
                raise CommandFailed(f"{name} exited {code}:\n{logs.out}{logs.err}")
            return
        check = spec.get("healthcheck")
        if check and not check.get("disable") and check.get("test") not in (["NONE"], "NONE"):
            # The compose file's own check, run as often as it may: compose gives a service
            # start_period plus retries x (interval + timeout) before calling it unhealthy.
            limit = duration_s(check.get("start_period"), 0) + int(check.get("retries", 3)) * (
                duration_s(check.get("interval"), 30) + duration_s(check.get("timeout"), 30)
            )
            try:
                await poll(
                    f"{name}'s health check",
                    ["podman", "healthcheck", "run", container],
                    timeout_s=max(limit, 60),
                )
            except CommandFailed as exc:
                logs = await run("podman", "logs", "--tail", "10", container, check=False)
                tail = (logs.out + logs.err)[-2000:]
                raise CommandFailed(f"{exc}\n{name}'s log:\n{tail}") from None

    async def down(self, *, volumes: bool = False) -> None:
        await self("down", *(["-v"] if volumes else []), timeout_s=300)


async def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m costguard.devstack.compose")
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    compose = Compose()
    try:
        if args.command == "down":
            await compose.down()
            return 0
        await compose.build()
        order = await compose.up()
    except CommandFailed as exc:
        print(f"make {args.command}: {exc}", file=sys.stderr)
        return 1
    print(f"started with {' '.join(compose.engine)}, in stages: {json.dumps(order)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
