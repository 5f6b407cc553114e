"""Running podman (and the other engines) from the end-to-end check and ``make up``.

``make e2e`` points ``CONTAINERS_CONF`` at ``deploy/e2e/containers.conf`` (runc and explicit
ulimits, which the machines it runs on need) unless it is set; ``make up`` leaves the
operator's podman settings alone. Neither edits ``/etc``.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
E2E_DIR = ROOT / "deploy" / "e2e"
CONTAINERS_CONF = E2E_DIR / "containers.conf"
WORK_DIR = ROOT / ".dev" / "e2e"


class CommandFailed(RuntimeError):
    """A command exited non-zero; the message holds its command line and its output's end."""


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def engine_env() -> dict[str, str]:
    """This process's environment, podman-compose's folder first on ``PATH``."""
    env = dict(os.environ)
    # podman-compose is installed in the virtualenv, beside this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


async def run(
    *args: str | Path,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    cwd: Path = ROOT,
    timeout_s: float = 900.0,
) -> Result:
    """Run a command to its end, capturing its output; non-zero raises ``CommandFailed``."""
    argv = [str(a) for a in args]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else engine_env(),
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise CommandFailed(f"{shlex.join(argv)}: no answer in {timeout_s:.0f} s") from None
    result = Result(
        process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )
    if check and result.code != 0:
        tail = "\n".join((result.out + result.err).strip().splitlines()[-15:])
        raise CommandFailed(f"{shlex.join(argv)} exited {result.code}:\n{tail}")
    return result


async def poll(
    what: str, probe: Sequence[str | Path], *, timeout_s: float, every_s: float = 0.5
) -> None:
    """Run ``probe`` until it exits 0; after ``timeout_s`` fail, quoting its last output.

    A readiness probe is a command, and nothing announces when it will start passing, so
    asking again is the only way to learn it (as an orchestrator's probe does).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = await run(*probe, check=False)
        if result.code == 0:
            return
        if time.monotonic() > deadline:
            tail = (result.out + result.err).strip()[-600:]
            raise CommandFailed(f"{what}: not ready after {timeout_s:.0f} s ({tail})")
        await asyncio.sleep(every_s)


async def wait_until(
    what: str, done: Callable[[], Awaitable[bool]], *, timeout_s: float, every_s: float = 0.2
) -> None:
    """Ask ``done`` until it is true (a container's state, which nothing announces)."""
    deadline = time.monotonic() + timeout_s
    while not await done():
        if time.monotonic() > deadline:
            raise CommandFailed(f"{what}: not after {timeout_s:.0f} s")
        await asyncio.sleep(every_s)


@dataclass
class Timeline:
    """Named steps with their start and length, printed as they end and again at the end."""

    started: float = field(default_factory=time.monotonic)
    steps: list[tuple[str, float, float, bool]] = field(default_factory=list)

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        begin = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            length = time.monotonic() - begin
            self.steps.append((name, begin - self.started, length, ok))
            mark = "ok" if ok else "FAILED"
            print(f"[{begin - self.started:7.1f}s] {name}: {mark} ({length:.1f} s)", flush=True)

    def summary(self) -> str:
        lines = ["timeline (start, length, step):"]
        for name, start, length, ok in self.steps:
            lines.append(f"  {start:7.1f}s {length:7.1f}s  {name}{'' if ok else '  FAILED'}")
        total = time.monotonic() - self.started
        lines.append(f"  total {total:.1f} s")
        return "\n".join(lines)
