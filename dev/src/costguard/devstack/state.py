"""What ``make dev`` keeps in its root between runs: who runs it now, and on which ports.

One root holds one Postgres data folder, so two runners on it would fight over it (the
second stopped the first one's Postgres to restart it on a port of its own). The runner
holds an exclusive ``flock`` on ``<root>/dev.lock`` for its whole life, with its pid and
gateway URL written in it; a second runner finds the lock taken, reads who holds it, and
leaves without touching anything. The kernel drops the lock when the holder dies, however
it dies, so a killed runner never blocks the next one.

The ports are kept in ``<root>/ports.json`` and reused on the next run while they are
free, so the addresses a developer exported (``COSTGUARD_TELEMETRY_ADDR``, the gateway's
URL) stay right across restarts.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from costguard.devstack.stack import free_port

SERVICES = ("telemetry", "throttle", "rollup")
PORTS = (
    "postgres",
    "redis",
    *SERVICES,
    "gateway",
    *(f"{name}_metrics" for name in SERVICES),
    "otlp_http",  # the telemetry service's OTLP/HTTP listener (OTLP_HTTP_PORT)
)
DEFAULT_GATEWAY_PORT = 8080


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None, url: str | None) -> None:
        at = f" at {url}" if url else ""
        by = f" (pid {pid})" if pid else ""
        super().__init__(f"already running{at}{by}")
        self.pid = pid
        self.url = url


class RunLock:
    """The exclusive right to run the stack of one root, for as long as it is held."""

    def __init__(self, root: Path) -> None:
        self.path = root / "dev.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`AlreadyRunning` naming the runner that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, url = _read_holder(fd)
            os.close(fd)
            raise AlreadyRunning(pid, url) from None
        self._fd = fd
        self._write({"pid": os.getpid()})

    def announce(self, gateway_url: str) -> None:
        """Say where this run serves, for a second runner to tell its user."""
        self._write({"pid": os.getpid(), "gateway": gateway_url})

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the only descriptor drops the lock

    def _write(self, holder: dict[str, object]) -> None:
        assert self._fd is not None
        data = json.dumps(holder).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    # The holder writes its pid right after locking; in that instant the file may be empty.
    raw = os.pread(fd, 4096, 0)
    try:
        holder = json.loads(raw) if raw else {}
    except ValueError:
        holder = {}
    if not isinstance(holder, dict):
        holder = {}
    pid, url = holder.get("pid"), holder.get("gateway")
    return (pid if isinstance(pid, int) else None, url if isinstance(url, str) else None)


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``127.0.0.1:port`` now.

    With SO_REUSEADDR, as Postgres, Redis, gRPC and uvicorn bind: the connections a
    stopped run closed linger in TIME_WAIT for a minute and must not count as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _remembered(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in PORTS and isinstance(v, int) and 0 < v < 65536}


def choose_ports(root: Path, gateway: int | None) -> tuple[dict[str, int], list[str]]:
    """Last run's ports where they are still free, new free ones elsewhere; and one note
    per port that could not be what it was last time (or what was asked for).

    ``gateway``: the port asked for (``--gateway-port``, ``COSTGUARD_DEV_PORT``), which
    wins over the remembered one; ``0`` means any free port, this time only (it is not
    remembered); ``None``: the remembered one, else 8080. What is chosen is remembered.
    """
    path = root / "ports.json"
    remembered = _remembered(path)
    wanted = {name: remembered.get(name, 0) for name in PORTS}
    wanted["gateway"] = (
        remembered.get("gateway", DEFAULT_GATEWAY_PORT) if gateway is None else gateway
    )
    chosen: dict[str, int] = {}
    for name, port in wanted.items():
        if port and port not in chosen.values() and port_is_free(port):
            chosen[name] = port
    notes = []
    for name, port in wanted.items():
        if name in chosen:
            continue
        # Not one another name still hopes for, nor one given out already.
        while (fresh := free_port()) in {*chosen.values(), *wanted.values()}:
            continue
        chosen[name] = fresh
        if port:
            notes.append(f"{name} port {port} is taken; using {fresh} instead")
    keep = dict(chosen)
    if gateway == 0:
        del keep["gateway"]
        if "gateway" in remembered:
            keep["gateway"] = remembered["gateway"]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(keep, indent=2) + "\n")
    tmp.replace(path)
    return {name: chosen[name] for name in PORTS}, notes
