"""Start Postgres and Redis on free loopback ports, data under a git-ignored folder.

Postgres refuses to run as root, so when we are root the data folder is handed to the
unprivileged ``nobody`` user and the server runs as that user. Both servers can be
started durable (``make dev``: data kept between runs) or disposable (tests: fsync off,
no Redis persistence).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from costguard.devstack.binaries import postgres_bin_dir, redis_server

DATABASE = "costguard"
_UNPRIVILEGED = "nobody"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged_ids() -> tuple[int, int] | None:
    """(uid, gid) of ``nobody`` when we are root, for Postgres to run as; else None."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(_UNPRIVILEGED)
    return entry.pw_uid, entry.pw_gid


def _world_traversable(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents] if p.exists())


@dataclass
class LocalPostgres:
    data_dir: Path
    durable: bool = True
    port: int = field(default_factory=free_port)
    _bin: Path = field(default_factory=postgres_bin_dir)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.data_dir), "LC_ALL": "C.UTF-8"}
        argv = [str(self._bin / args[0]), *args[1:]]
        ids = _unprivileged_ids()
        setpriv = shutil.which("setpriv") if ids else None
        if ids and setpriv:
            # Not subprocess's user=/group=: they make it fork() instead of vfork(), and
            # the forked child of a process whose gRPC threads are busy (a test's) dies
            # with SIGSEGV before exec now and then, so a `pg_ctl stop` silently did not
            # happen. setpriv drops the privileges after a plain spawn.
            uid, gid = ids
            argv = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]
            ids = None
        return subprocess.run(
            argv,
            check=check,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.data_dir,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
            extra_groups=[] if ids else None,
        )

    def _prepare(self) -> None:
        if os.geteuid() == 0 and not _world_traversable(self.data_dir.parent):
            # ``nobody`` cannot reach a folder below a private one (say /root): use a folder
            # in /tmp named after the requested one, so the data survives a restart.
            digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
            self.data_dir = Path(tempfile.gettempdir()) / f"costguard-pg-{digest}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ids = _unprivileged_ids()
        if ids:
            for root, dirs, files in os.walk(self.data_dir):
                for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.chown(name, *ids)
        self.data_dir.chmod(0o700)

    @property
    def _pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def stop_leftover(self) -> None:
        """Stop a server a killed run left running on this data (its postmaster.pid says so),
        so that the folder and the port it held are free for this one."""
        self._prepare()
        self._stop_leftover()

    def _stop_leftover(self) -> None:
        if (self._pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self._pgdata), "-m", "immediate", check=False)

    def start(self) -> str:
        self._prepare()
        if not (self._pgdata / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self._pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        self._stop_leftover()
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.data_dir}",
            "-c max_connections=200",
            # A query that cannot prune the raw tables' day partitions locks each of them and
            # its indexes (docs/operations.md, "Raw events by day").
            "-c max_locks_per_transaction=256",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self._pgdata),
            "-l",
            str(self.data_dir / "postgres.log"),
            "-o",
            " ".join(options),
        )
        self._ensure_database()
        return self.dsn

    def _ensure_database(self) -> None:
        asyncio.run(self._create_database())

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await conn.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await conn.close()

    def stop(self) -> None:
        if (self._pgdata / "postmaster.pid").exists():
            done = self._run(
                "pg_ctl", "stop", "-D", str(self._pgdata), "-m", "fast", "-w", check=False
            )
            if done.returncode != 0 and (self._pgdata / "postmaster.pid").exists():
                raise RuntimeError(f"pg_ctl stop failed ({done.returncode}): {done.stderr.strip()}")


@dataclass
class LocalRedis:
    data_dir: Path
    durable: bool = True
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes"] if self.durable else ["--save", "", "--appendonly", "no"]
        )
        self._process = subprocess.Popen(
            [
                str(redis_server()),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--logfile",
                str(self.data_dir / "redis.log"),
                *persistence,
            ],
        )
        self._wait_ready()
        return self.url

    def _wait_ready(self, timeout_s: float = 20.0) -> None:
        # redis-server has no "ready" signal to await: poll its port with PING.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.data_dir / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None


@dataclass
class DevStack:
    """Postgres and Redis together, under one folder; on the ports given, else free ones."""

    root: Path
    durable: bool = True
    postgres_port: int | None = None
    redis_port: int | None = None
    postgres: LocalPostgres = field(init=False)
    redis: LocalRedis = field(init=False)

    def __post_init__(self) -> None:
        self.postgres = LocalPostgres(
            self.root / "postgres", durable=self.durable, port=self.postgres_port or free_port()
        )
        self.redis = LocalRedis(
            self.root / "redis", durable=self.durable, port=self.redis_port or free_port()
        )

    def start(self) -> DevStack:
        self.postgres.start()
        try:
            self.redis.start()
        except BaseException:
            self.postgres.stop()
            raise
        return self

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()
