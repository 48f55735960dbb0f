"""GPU-time budgets in the store on a real Redis: admission reserves a job's estimate atomically with the quota check,
and the job's end settles it (the real figure, or given back)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from storage.connection import create_client
from storage.keys import Keys
from storage.models import JobState
from storage.store import BudgetExceededError, Claimed, JobStore, Limits, NewJob, StoreConfig
from storage.usage import UsageCharge, UsageStore, day_period, month_period

ENDPOINT = "ep-budget"
ESTIMATE_MS = 30_000
NOW = datetime.now(UTC)


@pytest.fixture
def store(redis: aioredis.Redis) -> JobStore:
    return JobStore(redis, StoreConfig(gpu_estimate_ms=ESTIMATE_MS))


@pytest.fixture
async def other_store(redis_url: str) -> AsyncIterator[JobStore]:
    """A second store on its own connection to the same Redis, as another bot process has."""
    client = create_client(redis_url)
    try:
        yield JobStore(client, StoreConfig(gpu_estimate_ms=ESTIMATE_MS))
    finally:
        await client.aclose()


def new_job(user_id: int = 1, guild_id: int | None = 10, images: int = 1) -> NewJob:
    return NewJob(
        jid=uuid.uuid4().hex,
        endpoint_id=ENDPOINT,
        model="sdxl",
        user_id=user_id,
        guild_id=guild_id,
        request={"prompt": "a cat"},
        images=images,
        at=NOW,
    )


async def member_spent(redis: aioredis.Redis, user_id: int = 1) -> tuple[int, int]:
    """The member's GPU milliseconds used and reserved today."""
    used, reserved = await redis.hmget(Keys().usage_member(day_period(NOW), user_id), ["gpu_ms", "reserved_ms"])
    return int(used or 0), int(reserved or 0)


async def finish(store: JobStore, jid: str, outcome: JobState, gpu_ms: int | None, *, keep: bool = False) -> None:
    """End a job as a poller does, with the GPU time RunPod reported (None: none)."""
    job = await store.get(jid)
    assert job is not None
    token = int(await store.redis.zscore(Keys().due(ENDPOINT), jid) or 0)
    charge = None
    if gpu_ms is not None:
        charge = UsageCharge(
            user_id=job.user_id, guild_id=job.guild_id, model=job.model, gpu_ms=gpu_ms, queue_ms=0, at=NOW
        )
    done = await store.finalize_begin(Claimed(job, token), outcome, lease_ms=1000, usage=charge, keep_reservation=keep)
    assert done is not None


async def test_two_concurrent_submits_cannot_both_pass_a_budget_with_room_for_one(
    store: JobStore, other_store: JobStore
) -> None:
    """Two processes submitting at once against a member budget with room for one job: one is admitted."""
    limits = Limits(member_daily_gpu_ms=45_000)
    results = await asyncio.gather(
        store.create(new_job(), limits), other_store.create(new_job(), limits), return_exceptions=True
    )
    refused = [result for result in results if isinstance(result, BudgetExceededError)]
    assert len(refused) == 1
    assert (refused[0].left_ms, refused[0].budget_ms, refused[0].estimate_ms) == (15_000, 45_000, ESTIMATE_MS)
    assert await member_spent(store.redis) == (0, ESTIMATE_MS)


async def test_a_servers_monthly_budget_refuses_what_does_not_fit(store: JobStore) -> None:
    """The server's month is shared by its members: another member's job is refused once it is spent."""
    limits = Limits(guild_monthly_gpu_ms=50_000)
    await store.create(new_job(user_id=1), limits)
    with pytest.raises(BudgetExceededError) as refused:
        await store.create(new_job(user_id=2), limits)
    assert (refused.value.scope, refused.value.left_ms) == ("guild", 20_000)


async def test_the_estimate_is_the_models_recent_run_time_times_the_images(store: JobStore) -> None:
    """With run times on record, the reservation is their median times the job's images, not the default."""
    await store.redis.rpush(Keys().execution_samples(ENDPOINT), 4000, 9000, 5000)
    created = await store.create(new_job(images=4), Limits(member_daily_gpu_ms=100_000))
    job = await store.get(created.jid)
    assert job is not None
    assert job.reserved_ms == 20_000
    assert await member_spent(store.redis) == (0, 20_000)


async def test_the_end_settles_the_reservation_to_the_real_figure(store: JobStore) -> None:
    """A job that ran 12 s counts 12 s against the budget, its 30 s estimate given back."""
    created = await store.create(new_job(), Limits(member_daily_gpu_ms=100_000))
    await finish(store, created.jid, JobState.COMPLETED, 12_000)
    await finish(store, created.jid, JobState.COMPLETED, 12_000)  # a second finish settles nothing again
    assert await member_spent(store.redis) == (12_000, 0)


async def test_a_job_cancelled_before_it_started_costs_nothing(store: JobStore) -> None:
    """Cancelled while queued (RunPod reports no execution time): the whole reservation comes back."""
    limits = Limits(member_daily_gpu_ms=100_000, guild_monthly_gpu_ms=100_000)
    created = await store.create(new_job(), limits)
    await finish(store, created.jid, JobState.CANCELLED, None)
    assert await member_spent(store.redis) == (0, 0)
    summed = UsageStore(store.redis, Keys())
    (month,) = await summed.guild(10, [month_period(NOW)])
    assert month.total.gpu_ms == 0
    assert await store.redis.hget(Keys().usage_guild(month_period(NOW), 10), "reserved_ms") == b"0"


async def test_a_job_whose_end_was_never_reported_keeps_its_estimate_charged(store: JobStore) -> None:
    """Expired without RunPod's report: it may have run and been billed, so the estimate stays reserved."""
    created = await store.create(new_job(), Limits(member_daily_gpu_ms=100_000))
    await finish(store, created.jid, JobState.EXPIRED, None, keep=True)
    assert await member_spent(store.redis) == (0, ESTIMATE_MS)


async def test_without_a_budget_nothing_is_reserved(store: JobStore) -> None:
    """No budget set: admission reserves nothing and the sums are untouched until the job ends."""
    created = await store.create(new_job(), Limits(user_active=3))
    job = await store.get(created.jid)
    assert job is not None
    assert job.reserved_ms == 0
    assert await member_spent(store.redis) == (0, 0)
