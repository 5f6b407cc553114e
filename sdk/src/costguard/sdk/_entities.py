"""``mark_episode_complete``: price an episode when it is done (seed two).

The episode's events may still sit in this process's telemetry buffer when the episode
ends, so the buffer is flushed first: the cost returned then counts every event recorded
before the call. ``schedule_episode_cost`` does the same in a background task, for a
handler (a webhook, say) that must answer at once.
"""

from __future__ import annotations

import asyncio
import logging
import os

import grpc
from grpc import aio

from costguard.sdk._client import TelemetryClient
from costguard.sdk._default import _Default
from costguard.sdk._request_id import with_request_id
from costguard.v1 import rollup_pb2, rollup_pb2_grpc

log = logging.getLogger(__name__)

# Running ``schedule_episode_cost`` tasks: the event loop keeps only weak references, and
# a task nobody else holds could be collected before it finishes.
_running: set[asyncio.Task[rollup_pb2.EntityCost | None]] = set()


async def _flush(client: TelemetryClient | None, episode_id: str, timeout_s: float) -> None:
    """Deliver what this process has buffered; on failure or timeout, warn and go on."""
    client = client if client is not None else _Default.client
    if client is None:
        return  # nothing configured, so nothing buffered here
    try:
        delivered = await client.flush(timeout_s)
    except Exception as exc:
        log.warning(
            "telemetry flush failed before the episode cost: it may miss events",
            extra={"episode_id": episode_id, "error": repr(exc)},
        )
        return
    if not delivered:
        log.warning(
            "telemetry not all delivered before the episode cost: it may miss events",
            extra={"episode_id": episode_id, "flush_timeout_s": timeout_s},
        )


async def mark_episode_complete(
    episode_id: str,
    *,
    target: str | None = None,
    token: str | None = None,
    timeout_s: float = 30.0,
    client: TelemetryClient | None = None,
    flush_timeout_s: float = 10.0,
) -> rollup_pb2.EntityCost | None:
    """Calculate the episode's cost from its events now, through the rollup service.

    First flushes ``client`` (default: the client of ``configure()``, if there is one)
    for up to ``flush_timeout_s``, so that the events this process recorded for the
    episode are stored before it is priced; a flush that does not finish in time is
    logged as a warning and the cost calculated anyway. Then asks the rollup service at
    ``target`` (default ``COSTGUARD_ROLLUP_ADDR``, ``127.0.0.1:50053``) to recalculate,
    waiting up to ``timeout_s``.

    Returns the episode's cost (logged at info with its total and event count), or None
    when it could not be calculated (logged as a warning): it never raises, so completing
    an episode never fails because of costguard.
    """
    try:
        await _flush(client, episode_id, flush_timeout_s)
        address = target or os.environ.get("COSTGUARD_ROLLUP_ADDR", "127.0.0.1:50053")
        secret = token if token is not None else os.environ.get("COSTGUARD_SERVICE_TOKEN")
        metadata = (("authorization", f"Bearer {secret}"),) if secret else ()
        async with aio.insecure_channel(address) as channel:
            reply = await rollup_pb2_grpc.RollupServiceStub(channel).RecalculateEntity(
                rollup_pb2.RecalculateEntityRequest(entity_type="episode", entity_id=episode_id),
                metadata=with_request_id(metadata),
                timeout=timeout_s,
            )
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, aio.AioRpcError) else grpc.StatusCode.UNKNOWN
        log.warning(
            "episode cost not calculated",
            extra={"episode_id": episode_id, "code": code.name, "error": str(exc)},
        )
        return None
    except Exception as exc:
        log.warning(
            "episode cost not calculated", extra={"episode_id": episode_id, "error": repr(exc)}
        )
        return None
    log.info(
        "episode cost calculated",
        extra={
            "episode_id": episode_id,
            "total_cost_usd": reply.cost.total_cost_usd,
            "event_count": reply.cost.event_count,
        },
    )
    return reply.cost


def schedule_episode_cost(
    episode_id: str,
    *,
    target: str | None = None,
    token: str | None = None,
    timeout_s: float = 30.0,
    client: TelemetryClient | None = None,
    flush_timeout_s: float = 10.0,
) -> asyncio.Task[rollup_pb2.EntityCost | None]:
    """Start :func:`mark_episode_complete` in a task and return at once.

    For handlers that must answer before the cost is known. The task is kept alive until
    it is done; its result is the cost, or None after a failure that was logged. It never
    ends in an exception (nor in "Task exception was never retrieved"); cancelling it
    cancels the calculation. Call it from a coroutine (it needs the running event loop).
    The current request id and user context carry into the task.
    """
    task = asyncio.get_running_loop().create_task(
        mark_episode_complete(
            episode_id,
            target=target,
            token=token,
            timeout_s=timeout_s,
            client=client,
            flush_timeout_s=flush_timeout_s,
        ),
        name=f"costguard-episode-cost:{episode_id}",
    )
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[rollup_pb2.EntityCost | None]) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    error = task.exception()  # retrieved, so asyncio never reports it as unretrieved
    if error is not None:  # mark_episode_complete catches everything: a bug if reached
        log.warning(
            "episode cost task failed",
            extra={"task": task.get_name(), "error": repr(error)},
        )
