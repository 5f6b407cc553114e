"""A real moto server on loopback for tests that drive real aiobotocore clients.

moto runs in this process, in a thread, on a free port; the clients reach it over HTTP
exactly as they would reach AWS. Lambda uses moto's docker-less backend (no container
engine here): every invocation succeeds and echoes its payload.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
ACCESS_KEY, SECRET_KEY = "testing", "testing"  # fake: moto accepts any
# The switch moto.awslambda.utils.get_backend reads; set it before creating any function,
# because the docker and docker-less backends keep separate functions.
LAMBDA_WITHOUT_DOCKER = {"lambda": {"use_docker": False}}


@contextmanager
def running_moto_server() -> Iterator[str]:
    """Start moto on 127.0.0.1 (free port), configured for docker-less Lambda; yield its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        reply = httpx.post(f"{url}/moto-api/config", json=LAMBDA_WITHOUT_DOCKER)
        reply.raise_for_status()
        assert reply.json()["lambda"] == {"use_docker": False}
        yield url
    finally:
        server.stop()


async def reset_moto(url: str) -> None:
    """Forget every bucket, queue, identity and function (the configuration stays)."""
    async with httpx.AsyncClient() as client:
        (await client.post(f"{url}/moto-api/reset")).raise_for_status()
