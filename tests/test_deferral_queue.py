"""The throttle's deferral queue against a real Redis: order, fairness and lost workers.

Time is passed explicitly (``now_ms``), so expiry is tested by jumping the clock, not sleeping.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from costguard.throttle.queue import DeferralQueue, DeferredJob

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
WEIGHTS = {"enterprise": 5, "pro": 3, "free": 1}
VISIBILITY_MS = 30_000


@pytest.fixture
async def queue(redis_client: Redis) -> DeferralQueue:
    await redis_client.flushdb()
    return DeferralQueue(redis_client, weights=WEIGHTS, name="test")


def job(
    job_id: str, tier: str = "free", *, not_before_ms: int = 0, payload: bytes = b""
) -> DeferredJob:
    return DeferredJob(
        job_id=job_id,
        user_id=f"user-{job_id}",
        tier=tier,
        domain="audio",
        job_type="transcribe",
        payload=payload,
        not_before_ms=not_before_ms,
    )


async def lease_ids(queue: DeferralQueue, now_ms: int, max_jobs: int = 1) -> list[str]:
    leases = await queue.lease(
        "worker", max_jobs=max_jobs, visibility_timeout_ms=VISIBILITY_MS, now_ms=now_ms
    )
    return [lease.job.job_id for lease in leases]


async def test_round_trip_keeps_payload_bytes_and_ack_removes_the_job(
    queue: DeferralQueue,
) -> None:
    payload = bytes(range(256)) + b"\x00\xff not utf-8 \xc3\x28"
    stored = await queue.defer(job("j1", "pro", payload=payload), now_ms=T0)
    assert stored.not_before_ms == T0  # raised to the enqueue time
    assert await queue.depth() == {"enterprise": 0, "pro": 1, "free": 0}

    [lease] = await queue.lease("w1", max_jobs=5, visibility_timeout_ms=VISIBILITY_MS, now_ms=T0)
    assert lease.job == job("j1", "pro", payload=payload, not_before_ms=T0)
    assert lease.deliveries == 1
    assert lease.enqueued_at_ms == T0
    assert lease.lease_expires_at_ms == T0 + VISIBILITY_MS
    assert await queue.depth() == {"enterprise": 0, "pro": 0, "free": 0}
    assert await queue.leased_count() == 1

    assert await queue.ack("j1", lease.lease_token, now_ms=T0 + 1) is True
    assert await queue.ack("j1", lease.lease_token, now_ms=T0 + 2) is False
    assert await queue.leased_count() == 0
    assert await lease_ids(queue, T0 + 10 * VISIBILITY_MS) == []


async def test_without_now_the_clock_is_redis_time(queue: DeferralQueue) -> None:
    deferred = await queue.defer(job(""))
    uuid.UUID(deferred.job_id, version=4)  # generated when empty
    [lease] = await queue.lease("w1", max_jobs=1, visibility_timeout_ms=VISIBILITY_MS)
    assert lease.job.job_id == deferred.job_id
    assert lease.lease_expires_at_ms == pytest.approx(
        lease.enqueued_at_ms + VISIBILITY_MS, abs=5000
    )
    assert await queue.ack(deferred.job_id, lease.lease_token) is True


async def test_defer_is_idempotent_on_job_id(queue: DeferralQueue) -> None:
    first = await queue.defer(job("same", "pro", payload=b"first"), now_ms=T0)
    again = await queue.defer(job("same", "free", payload=b"second"), now_ms=T0 + 5)
    assert again == first
    assert await queue.depth() == {"enterprise": 0, "pro": 1, "free": 0}
    [lease] = await queue.lease("w", max_jobs=10, visibility_timeout_ms=1000, now_ms=T0 + 10)
    assert lease.job.payload == b"first"
    # Still idempotent while leased: the retry does not queue a second copy.
    assert await queue.defer(job("same", "pro", payload=b"third"), now_ms=T0 + 20) == first
    assert await queue.depth() == {"enterprise": 0, "pro": 0, "free": 0}


async def test_a_job_is_not_leased_before_its_not_before(queue: DeferralQueue) -> None:
    await queue.defer(job("later", "enterprise", not_before_ms=T0 + 1000), now_ms=T0)
    assert await queue.depth() == {"enterprise": 1, "pro": 0, "free": 0}  # delayed counts
    assert await lease_ids(queue, T0 + 999, max_jobs=10) == []
    assert await lease_ids(queue, T0 + 1000, max_jobs=10) == ["later"]


async def test_fifo_within_a_tier_by_not_before_then_enqueue_order(queue: DeferralQueue) -> None:
    for name in ("a", "b", "c", "d"):  # equal not_before: enqueue order decides
        await queue.defer(job(name, not_before_ms=T0 + 100), now_ms=T0)
    await queue.defer(job("early", not_before_ms=T0 + 50), now_ms=T0 + 1)  # deferred last
    await queue.defer(job("due-now"), now_ms=T0 + 60)  # not_before becomes T0 + 60

    assert await lease_ids(queue, T0 + 200) == ["early"]
    assert await lease_ids(queue, T0 + 200) == ["due-now"]
    assert await lease_ids(queue, T0 + 200, max_jobs=10) == ["a", "b", "c", "d"]


async def test_fifo_holds_for_many_equal_not_before(queue: DeferralQueue) -> None:
    names = [f"job-{i}" for i in range(30)]
    for name in names:
        await queue.defer(job(name, "pro"), now_ms=T0)
    leased = [name for _ in range(6) for name in await lease_ids(queue, T0, max_jobs=5)]
    assert leased == names


async def test_tier_shares_follow_the_weights(queue: DeferralQueue) -> None:
    """900 single-job leases over three full tiers give each tier its weight's share of
    leases, within 2 percentage points (smooth weighted round-robin is in fact exact: 500,
    300 and 100), and every window of 9 consecutive leases already holds 5, 3 and 1."""
    for i in range(900):
        for tier in WEIGHTS:
            await queue.defer(job(f"{tier}-{i}", tier), now_ms=T0)

    order = [
        lease.job.tier
        for _ in range(900)
        for lease in await queue.lease(
            "w", max_jobs=1, visibility_timeout_ms=VISIBILITY_MS, now_ms=T0 + 1
        )
    ]
    assert len(order) == 900
    shares = Counter(order)
    for tier, weight in WEIGHTS.items():
        assert abs(shares[tier] / 900 - weight / 9) <= 0.02, shares
    for start in range(0, 900, 9):
        assert Counter(order[start : start + 9]) == WEIGHTS
    assert await queue.depth() == {"enterprise": 400, "pro": 600, "free": 800}


async def test_replicas_share_one_rotation(redis_client: Redis, queue: DeferralQueue) -> None:
    """Two queue objects (two throttle replicas) alternating leases still give exact shares."""
    replica = DeferralQueue(redis_client, weights=WEIGHTS, name="test")
    for i in range(20):
        for tier in WEIGHTS:
            await queue.defer(job(f"{tier}-{i}", tier), now_ms=T0)
    order: list[str] = []
    for step in range(18):
        serving = queue if step % 2 == 0 else replica
        [lease] = await serving.lease("w", max_jobs=1, visibility_timeout_ms=1000, now_ms=T0)
        order.append(lease.job.tier)
    assert Counter(order) == {"enterprise": 10, "pro": 6, "free": 2}


async def test_a_tier_with_nothing_due_neither_blocks_nor_saves_credit(
    queue: DeferralQueue,
) -> None:
    for i in range(6):
        await queue.defer(job(f"ent-{i}", "enterprise", not_before_ms=T0 + 1000), now_ms=T0)
    for i in range(20):
        await queue.defer(job(f"free-{i}", "free"), now_ms=T0)

    # Enterprise has nothing due: free is served alone.
    assert await lease_ids(queue, T0 + 10, max_jobs=10) == [f"free-{i}" for i in range(10)]
    # Enterprise did not bank credit while waiting: the next six follow 5:1, not 6:0.
    tiers = [
        lease.job.tier
        for lease in await queue.lease("w", max_jobs=6, visibility_timeout_ms=1, now_ms=T0 + 1000)
    ]
    assert Counter(tiers) == {"enterprise": 5, "free": 1}


async def test_unknown_tiers_weigh_one(queue: DeferralQueue) -> None:
    for i in range(40):
        await queue.defer(job(f"p-{i}", "pro"), now_ms=T0)
        await queue.defer(job(f"t-{i}", "trial"), now_ms=T0)
    tiers = [
        lease.job.tier
        for lease in await queue.lease("w", max_jobs=40, visibility_timeout_ms=1, now_ms=T0)
    ]
    assert Counter(tiers) == {"pro": 30, "trial": 10}
    assert (await queue.depth())["trial"] == 30


async def test_max_jobs_caps_one_lease_across_tiers(queue: DeferralQueue) -> None:
    for i in range(3):
        for tier in WEIGHTS:
            await queue.defer(job(f"{tier}-{i}", tier), now_ms=T0)
    leases = await queue.lease("w", max_jobs=4, visibility_timeout_ms=1000, now_ms=T0)
    # SWRR's first four picks for 5/3/1: enterprise, pro, enterprise, free.
    assert [lease.job.job_id for lease in leases] == [
        "enterprise-0",
        "pro-0",
        "enterprise-1",
        "free-0",
    ]
    assert len({lease.lease_token for lease in leases}) == 4
    assert await queue.depth() == {"enterprise": 1, "pro": 2, "free": 2}
    assert await queue.leased_count() == 4
    assert len(await lease_ids(queue, T0, max_jobs=100)) == 5


async def test_a_dead_workers_leases_come_back_after_the_visibility_timeout(
    queue: DeferralQueue,
) -> None:
    await queue.defer(job("first", "pro", payload=b"x"), now_ms=T0)
    await queue.defer(job("second", "pro"), now_ms=T0)
    dead = await queue.lease("dead", max_jobs=2, visibility_timeout_ms=VISIBILITY_MS, now_ms=T0)
    assert [lease.job.job_id for lease in dead] == ["first", "second"]
    await queue.defer(job("third", "pro"), now_ms=T0 + 1)
    await queue.defer(job("fourth", "pro"), now_ms=T0 + 2)

    # Hidden from other workers until the lease expires.
    assert await lease_ids(queue, T0 + VISIBILITY_MS - 1) == ["third"]
    # An expired lease can no longer be acked, even before another lease call reclaims it.
    assert await queue.ack("first", dead[0].lease_token, now_ms=T0 + VISIBILITY_MS) is False

    back = await queue.lease("alive", max_jobs=5, visibility_timeout_ms=1000, now_ms=T0 + 40_000)
    # Back at their original positions: ahead of "fourth", deferred after them.
    assert [lease.job.job_id for lease in back] == ["first", "second", "fourth"]
    assert [lease.deliveries for lease in back] == [2, 2, 1]
    assert back[0].job.payload == b"x"
    assert back[0].lease_token != dead[0].lease_token
    assert back[0].lease_expires_at_ms == T0 + 41_000
    assert await queue.leased_count() == 4  # the three, and "third" still leased

    assert await queue.ack("first", dead[0].lease_token, now_ms=T0 + 40_001) is False
    assert await queue.ack("second", dead[1].lease_token, now_ms=T0 + 40_001) is False
    assert await queue.ack("first", back[0].lease_token, now_ms=T0 + 40_001) is True
    assert await queue.ack("second", back[1].lease_token, now_ms=T0 + 40_001) is True
    # "third" and "fourth" were never acked either: they too come back, in order.
    again = await queue.lease("alive", max_jobs=5, visibility_timeout_ms=1000, now_ms=T0 + 10**6)
    assert [(lease.job.job_id, lease.deliveries) for lease in again] == [
        ("third", 2),
        ("fourth", 2),
    ]


async def test_ack_with_a_wrong_token_or_unknown_job_is_refused(queue: DeferralQueue) -> None:
    await queue.defer(job("j"), now_ms=T0)
    [lease] = await queue.lease("w", max_jobs=1, visibility_timeout_ms=1000, now_ms=T0)
    assert await queue.ack("j", "not-the-token", now_ms=T0 + 1) is False
    assert await queue.ack("missing", lease.lease_token, now_ms=T0 + 1) is False
    assert await queue.leased_count() == 1
    assert await queue.ack("j", lease.lease_token, now_ms=T0 + 1) is True


async def test_concurrent_leases_never_hand_out_a_job_twice(queue: DeferralQueue) -> None:
    for i in range(60):
        await queue.defer(job(f"j-{i}", list(WEIGHTS)[i % 3]), now_ms=T0)
    batches = await asyncio.gather(
        *[
            queue.lease(f"w{n}", max_jobs=5, visibility_timeout_ms=1000, now_ms=T0)
            for n in range(20)
        ]
    )
    ids = [lease.job.job_id for batch in batches for lease in batch]
    assert sorted(ids) == sorted(f"j-{i}" for i in range(60))


async def test_all_keys_of_a_queue_share_one_cluster_slot(
    redis_client: Redis, queue: DeferralQueue
) -> None:
    await queue.defer(job("a", "pro"), now_ms=T0)
    await queue.defer(job("b", "free", not_before_ms=T0 + 5), now_ms=T0)
    await queue.defer(job("c", "vip"), now_ms=T0)
    [lease] = await queue.lease("w", max_jobs=1, visibility_timeout_ms=1000, now_ms=T0)
    keys = [key async for key in redis_client.scan_iter()]
    assert len(keys) >= 8  # seq, tiers, ready sets, leased, credit, job hashes
    assert {key_slot(key.encode()) for key in keys} == {key_slot(b"cgq:{test}:seq")}
    assert all(key.startswith("cgq:{test}:") for key in keys)
    assert lease.job.job_id == "a"


def test_bad_configuration_is_refused(redis_client: Redis) -> None:
    with pytest.raises(ValueError, match="braces"):
        DeferralQueue(redis_client, weights=WEIGHTS, name="a}b")
    with pytest.raises(ValueError, match="positive"):
        DeferralQueue(redis_client, weights={"free": 0})
