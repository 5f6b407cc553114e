"""Run a costguard entry point as a real child process and follow its JSON log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


class ServiceProcess:
    def __init__(self, module: str, env: dict[str, str], args: Sequence[str] = ()) -> None:
        self.module = module
        self.args = list(args)
        self.env = {**os.environ, **env}
        self.process: asyncio.subprocess.Process | None = None
        self.logs: list[dict[str, Any]] = []

    async def start(self) -> ServiceProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            *self.args,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return self

    async def wait_for_log(self, message: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Read log lines until one has ``msg == message``; fail if the process exits first."""
        assert self.process is not None
        assert self.process.stderr is not None
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self.process.stderr.readline()
                if not line:
                    raise AssertionError(f"{self.module} exited before logging {message!r}")
                entry: dict[str, Any] = json.loads(line)
                self.logs.append(entry)
                if entry.get("msg") == message:
                    return entry

    async def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, then the exit code; the rest of the log is kept in ``logs``."""
        assert self.process is not None
        assert self.process.stderr is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout_s):
            rest = await self.process.stderr.read()
            code = await self.process.wait()
        self.logs += [json.loads(line) for line in rest.decode().splitlines() if line.strip()]
        return code

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def run_to_exit(
    module: str, env: dict[str, str], timeout_s: float = 30.0, args: Sequence[str] = ()
) -> tuple[int, str]:
    """Run an entry point that is expected to stop on its own; return (code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # it did not stop on its own: never leave it behind
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def poll_until(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, interval_s: float = 0.005
) -> None:
    """For state another process changes and nothing announces (rows it committed):
    check it at a short interval, failing after ``timeout_s``."""
    for _ in range(int(timeout_s / interval_s)):
        if await check():
            return
        await asyncio.sleep(interval_s)
    raise TimeoutError(f"condition not met within {timeout_s}s")
