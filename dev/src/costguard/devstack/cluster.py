"""A local Redis Cluster of three masters on loopback, for tests and benchmarks (never
production).

Each master is a ``redis-server`` in cluster mode in a folder of its own, without
persistence; ``redis-cli --cluster create`` splits the 16384 slots among them, and
:meth:`LocalRedisCluster.start` returns once every node reports ``cluster_state:ok``. The
services reach it as ``REDIS_URL=redis+cluster://127.0.0.1:<any node's port>``.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from costguard.devstack.binaries import redis_cli, redis_server
from costguard.devstack.stack import free_port

# A node's cluster bus listens 10000 above its port (Redis 6 has no ``cluster-port``).
BUS_OFFSET = 10_000


def _bus_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port + BUS_OFFSET))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port is free too."""
    for _ in range(200):
        port = free_port()
        if port not in taken and port + BUS_OFFSET <= 65535 and _bus_port_free(port):
            return port
    raise RuntimeError("no free port pair (port and port + 10000) found on 127.0.0.1")


def _complete(reply: bytes) -> bool:
    if reply.startswith(b"$"):
        header, _, body = reply.partition(b"\r\n")
        return len(body) >= int(header[1:]) + 2
    return reply.endswith(b"\r\n")


def ask(port: int, command: str) -> str:
    """One inline command to the node on ``port``; its reply as text (a bulk reply's body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        sock.sendall(command.encode() + b"\r\n")
        reply = b""
        while not _complete(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    if reply.startswith(b"$"):
        return reply.partition(b"\r\n")[2][:-2].decode()
    return reply.decode().strip()


@dataclass
class LocalRedisCluster:
    root: Path
    masters: int = 3
    node_timeout_ms: int = 5000
    ports: list[int] = field(default_factory=list)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A startup node: the client discovers the others from it."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, timeout_s: float = 60.0) -> str:
        try:
            for _ in range(self.masters):
                self._start_node(free_cluster_port(set(self.ports)))
            deadline = time.monotonic() + timeout_s
            for port in self.ports:
                self._await(port, "PING", "PONG", deadline)
            self._create()
            for port in self.ports:
                self._await(port, "CLUSTER INFO", "cluster_state:ok", deadline)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _start_node(self, port: int) -> None:
        folder = self.root / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.ports.append(port)
        self._processes.append(
            subprocess.Popen(
                [
                    str(redis_server()),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(folder),
                    "--logfile",
                    str(folder / "redis.log"),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-node-timeout",
                    str(self.node_timeout_ms),
                    "--appendonly",
                    "no",
                    "--save",
                    "",
                ]
            )
        )

    def _create(self) -> None:
        """Join the nodes and split the slots among them, as masters without replicas."""
        done = subprocess.run(
            [
                str(redis_cli()),
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")

    def _await(self, port: int, command: str, expected: str, deadline: float) -> None:
        # Neither a server's start nor the cluster's agreement announces itself: poll.
        index = self.ports.index(port)
        while time.monotonic() < deadline:
            if self._processes[index].poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.root / str(port)}/redis.log")
            try:
                if expected in ask(port, command):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"node {port}: no {expected!r} in reply to {command}")

    def stop_node(self, port: int) -> None:
        """Stop one master, as a crash would (the others notice after the node timeout)."""
        process = self._processes[self.ports.index(port)]
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            process.wait(timeout=10)
        self._processes.clear()
