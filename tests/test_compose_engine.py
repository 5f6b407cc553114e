"""`make up` / `make down` run whichever compose engine the machine has.

The engines are stand-ins on a PATH of their own: small shell scripts that record the
arguments they were run with and answer `compose version` as the real ones do with and
without their compose support.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "deploy" / "compose" / "engine.sh"
COMPOSE_ARGS = ["-f", "deploy/compose/docker-compose.yml", "--env-file", "deploy/compose/.env"]

# How each stand-in answers: a docker or podman with compose support, one without.
WITH_COMPOSE = "exit 0"
WITHOUT_COMPOSE = (
    'if [ "$1" = compose ]; then echo "unknown shorthand flag: \'f\' in -f" >&2; exit 125; fi'
)


def _engines(folder: Path, **behaviour: str) -> Path:
    """A bin folder holding the named stand-ins (podman_compose is podman-compose)."""
    folder.mkdir()
    for name, body in behaviour.items():
        script = folder / name.replace("_", "-")
        script.write_text(f'#!/bin/sh\necho "$0 $*" >> "{folder}/calls"\n{body}\n')
        script.chmod(0o755)
    return folder


def _calls(folder: Path) -> list[str]:
    log = folder / "calls"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.replace(f"{folder}/", "") for line in lines]


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENGINE), *args], env={"PATH": str(folder)}, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("behaviour", "chosen"),
    [
        ({"docker": WITH_COMPOSE, "podman": WITH_COMPOSE}, "docker compose"),
        (
            {"docker": WITHOUT_COMPOSE, "podman": WITH_COMPOSE, "docker_compose": WITH_COMPOSE},
            "podman compose",
        ),
        ({"podman": WITHOUT_COMPOSE, "podman_compose": WITH_COMPOSE}, "podman-compose"),
        (
            {"docker": WITHOUT_COMPOSE, "podman": WITHOUT_COMPOSE, "docker_compose": WITH_COMPOSE},
            "docker-compose",
        ),
        ({"docker_compose": WITH_COMPOSE, "podman_compose": WITH_COMPOSE}, "podman-compose"),
    ],
)
def test_the_first_engine_with_compose_runs_the_command(
    tmp_path: Path, behaviour: dict[str, str], chosen: str
) -> None:
    folder = _engines(tmp_path / "bin", **behaviour)
    result = _run(folder, *COMPOSE_ARGS, "up", "-d", "--build")
    assert result.returncode == 0, result.stderr
    command = f"{chosen} {' '.join(COMPOSE_ARGS)} up -d --build"
    # Only probes (`compose version`) before it, and nothing after it.
    assert _calls(folder)[-1] == command
    assert all(call.endswith("compose version") for call in _calls(folder)[:-1])


def test_without_an_engine_it_says_what_to_install(tmp_path: Path) -> None:
    folder = _engines(tmp_path / "bin", docker=WITHOUT_COMPOSE)
    result = _run(folder, *COMPOSE_ARGS, "up", "-d")
    assert result.returncode == 1
    assert result.stderr == (
        "no compose engine found: install Docker with its compose plugin (docker compose), "
        "or Podman with podman-compose (pip install podman-compose)\n"
    )
    assert _calls(folder) == ["docker compose version"]  # asked, never run with the arguments


@pytest.mark.parametrize(
    ("behaviour", "chosen"),
    [
        ({"docker": WITH_COMPOSE}, "docker compose"),
        ({"docker": WITHOUT_COMPOSE, "podman_compose": WITH_COMPOSE}, "podman-compose"),
    ],
)
def test_print_names_the_engine_without_running_it(
    tmp_path: Path, behaviour: dict[str, str], chosen: str
) -> None:
    """`make up` asks which engine it is: Docker's honours depends_on, podman's is staged."""
    folder = _engines(tmp_path / "bin", **behaviour)
    result = _run(folder, "--print", *COMPOSE_ARGS, "up")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{chosen}\n"
    assert all(call.endswith("compose version") for call in _calls(folder))


def test_make_down_goes_through_the_detection(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make is not None
    folder = _engines(tmp_path / "bin", docker=WITHOUT_COMPOSE, podman_compose=WITH_COMPOSE)
    result = subprocess.run(
        [make, "--no-print-directory", "down"],
        cwd=ROOT,
        env={"PATH": str(folder)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _calls(folder)[-1] == f"podman-compose {' '.join(COMPOSE_ARGS)} down"
