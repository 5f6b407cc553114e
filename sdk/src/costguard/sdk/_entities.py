"""``mark_episode_complete``: price an episode when it is done (seed two)."""

from __future__ import annotations

import logging
import os

import grpc
from grpc import aio

from costguard.sdk._request_id import with_request_id
from costguard.v1 import rollup_pb2, rollup_pb2_grpc

log = logging.getLogger(__name__)


async def mark_episode_complete(
    episode_id: str, *, target: str | None = None, token: str | None = None, timeout_s: float = 30.0
) -> rollup_pb2.EntityCost | None:
    """Calculate the episode's cost from its events now, through the rollup service.

    Returns the episode's cost, or None when it could not be calculated: the failure is
    logged and never raised, so completing an episode never fails because of costguard.
    ``target`` defaults to ``COSTGUARD_ROLLUP_ADDR`` (``127.0.0.1:50053``).
    """
    address = target or os.environ.get("COSTGUARD_ROLLUP_ADDR", "127.0.0.1:50053")
    secret = token if token is not None else os.environ.get("COSTGUARD_SERVICE_TOKEN")
    metadata = (("authorization", f"Bearer {secret}"),) if secret else ()
    try:
        async with aio.insecure_channel(address) as channel:
            reply = await rollup_pb2_grpc.RollupServiceStub(channel).RecalculateEntity(
                rollup_pb2.RecalculateEntityRequest(entity_type="episode", entity_id=episode_id),
                metadata=with_request_id(metadata),
                timeout=timeout_s,
            )
    except grpc.RpcError as exc:
        log.warning(
            "episode cost not calculated", extra={"episode_id": episode_id, "error": str(exc)}
        )
        return None
    return reply.cost
