"""GPU time added up on a real Redis: in the step that records a job's outcome, once per job, per member, server and
model, per UTC day and month, with every sum expiring."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from storage.defaults import DAY_S
from storage.models import JobState
from storage.store import Claimed, FinalizeBegin, JobStore, NewJob, StoreConfig
from storage.usage import DAY_TTL_S, MONTH_TTL_S, Breakdown, Sums, UsageCharge, UsageStore, day_period, month_period
from tests.waiting import wait_until

ENDPOINT = "ep-usage"
LEASE_MS = 100
AT = datetime(2025, 6, 30, 23, 59, 58, tzinfo=UTC)
DAY, MONTH = day_period(AT), month_period(AT)


@pytest.fixture
def store(redis: aioredis.Redis) -> JobStore:
    return JobStore(redis, StoreConfig(submit_lease_ms=LEASE_MS))


@pytest.fixture
def usage(store: JobStore) -> UsageStore:
    return UsageStore(store.redis, store.keys)


async def running_job(store: JobStore, user_id: int = 1, guild_id: int | None = 10, model: str = "sdxl") -> str:
    """A job at RunPod, due at once."""
    jid = uuid.uuid4().hex
    await store.create(NewJob(jid=jid, endpoint_id=ENDPOINT, model=model, user_id=user_id, guild_id=guild_id))
    job = await store.get(jid)
    assert job is not None
    assert await store.attach_runpod_id(job, f"rp-{jid}", first_poll_delay_ms=0) is not None
    return jid


async def claim(store: JobStore, lease_ms: int = LEASE_MS) -> Claimed:
    batch = await store.claim_due(ENDPOINT, limit=1, lease_ms=lease_ms)
    assert len(batch.jobs) == 1
    return batch.jobs[0]


async def claim_after_lease(store: JobStore) -> Claimed:
    """The job again, claimed by another process once the first holder's lease ran out."""
    found: list[Claimed] = []

    async def claimed() -> bool:
        found.extend((await store.claim_due(ENDPOINT, limit=1, lease_ms=10_000)).jobs)
        return bool(found)

    await wait_until(claimed, timeout_s=5)
    return found[0]


def charge_for(claimed: Claimed, gpu_ms: int = 4200, queue_ms: int = 800, **changes: object) -> UsageCharge:
    job = claimed.job
    fields: dict[str, object] = {
        "user_id": job.user_id,
        "guild_id": job.guild_id,
        "model": job.model,
        "gpu_ms": gpu_ms,
        "queue_ms": queue_ms,
        "at": AT,
        **changes,
    }
    return UsageCharge(**fields)  # type: ignore[arg-type]


def finish(claimed: Claimed, charge: UsageCharge | None, outcome: JobState = JobState.COMPLETED) -> FinalizeBegin:
    return FinalizeBegin(claimed, outcome, lease_ms=10_000, usage=charge)


async def test_a_finished_job_adds_its_gpu_and_queue_time_to_every_sum(store: JobStore, usage: UsageStore) -> None:
    """The member's, the server's, the member's in that server and the bot's sums, of the day and of the month, each
    gain the job, its GPU and queue time, in total and under its model."""
    await running_job(store, user_id=7, guild_id=70)
    claimed = await claim(store)
    finalizing = await store.apply_one(finish(claimed, charge_for(claimed)))
    assert finalizing is not None
    assert finalizing.counted
    one = Sums(jobs=1, gpu_ms=4200, queue_ms=800)
    expected = Breakdown(total=one, models={"sdxl": one})
    periods = [DAY, MONTH]
    assert await usage.member(7, periods) == [expected, expected]
    assert await usage.member_in_guild(70, 7, periods) == [expected, expected]
    assert await usage.guild(70, periods) == [expected, expected]
    assert await usage.totals(periods) == [expected, expected]
    assert [(ranked.id, ranked.usage) for ranked in await usage.top_members(70, MONTH, 10)] == [(7, expected)]
    assert [(ranked.id, ranked.usage) for ranked in await usage.guilds(MONTH)] == [(70, expected)]


async def test_two_processes_finishing_one_job_add_it_once(store: JobStore, usage: UsageStore) -> None:
    """A process that stalled past its lease and the one that took the job over both try to finish it: the job's
    GPU time is added once (the stale finish is fenced out, and with it its charge)."""
    await running_job(store)
    stale = await claim(store)
    fresh = await claim_after_lease(store)
    stale_finish, fresh_finish = await asyncio.gather(
        store.apply_one(finish(stale, charge_for(stale))), store.apply_one(finish(fresh, charge_for(fresh)))
    )
    assert stale_finish is None
    assert fresh_finish is not None
    assert fresh_finish.counted
    (month,) = await usage.totals([MONTH])
    assert month.total == Sums(jobs=1, gpu_ms=4200, queue_ms=800)


async def test_a_finish_recorded_again_after_a_crash_adds_nothing_more(store: JobStore, usage: UsageStore) -> None:
    """A process records a job's outcome with its GPU time and dies before delivering; the process that takes the job
    over records the outcome again under its own lease: the job's GPU time is still counted once."""
    await running_job(store, user_id=3, guild_id=30)
    first = await claim(store, lease_ms=10_000)
    crashed = await store.apply_one(
        FinalizeBegin(first, JobState.COMPLETED, lease_ms=LEASE_MS, usage=charge_for(first))
    )
    assert crashed is not None
    assert crashed.counted
    again = await claim_after_lease(store)
    assert again.job.state is JobState.COMPLETED
    retried = await store.apply_one(finish(again, charge_for(again)))
    assert retried is not None
    assert not retried.counted
    for sums in await usage.member(3, [DAY, MONTH]) + await usage.guild(30, [DAY, MONTH]):
        assert sums.total == Sums(jobs=1, gpu_ms=4200, queue_ms=800)


async def test_a_job_finished_without_gpu_time_adds_nothing(store: JobStore, usage: UsageStore) -> None:
    """A job cancelled before a worker started it (no charge) records its outcome and leaves every sum untouched."""
    await running_job(store)
    claimed = await claim(store)
    finalizing = await store.apply_one(finish(claimed, None, JobState.CANCELLED))
    assert finalizing is not None
    assert not finalizing.counted
    assert await usage.totals([DAY, MONTH]) == [Breakdown(), Breakdown()]
    assert await usage.guilds(MONTH) == []


async def test_money_is_added_per_currency_in_millionths(store: JobStore, usage: UsageStore) -> None:
    """Two priced jobs in two currencies and an unpriced one: each currency keeps its own sum, per model too."""
    for model, cost, currency in (("sdxl", 1250, "USD"), ("flux", 300, "EUR"), ("free", None, None)):
        await running_job(store, model=model)
        claimed = await claim(store)
        charge = charge_for(claimed, gpu_ms=1000, cost_micros=cost, currency=currency)
        assert await store.apply_one(finish(claimed, charge)) is not None
    (month,) = await usage.guild(10, [MONTH])
    assert month.total == Sums(jobs=3, gpu_ms=3000, queue_ms=2400, costs={"USD": 1250, "EUR": 300})
    assert month.models["sdxl"].costs == {"USD": 1250}
    assert month.models["free"].costs == {}


async def test_members_and_servers_are_ranked_by_gpu_time(store: JobStore, usage: UsageStore) -> None:
    """A server's top members, and the servers, come most GPU time first; another server's members are not in it."""
    for user_id, guild_id, gpu_ms in ((1, 10, 500), (2, 10, 3000), (3, 20, 9000), (1, 10, 1000)):
        await running_job(store, user_id=user_id, guild_id=guild_id)
        claimed = await claim(store)
        assert await store.apply_one(finish(claimed, charge_for(claimed, gpu_ms=gpu_ms))) is not None
    top = await usage.top_members(10, MONTH, 10)
    assert [(ranked.id, ranked.usage.total.gpu_ms, ranked.usage.total.jobs) for ranked in top] == [
        (2, 3000, 1),
        (1, 1500, 2),
    ]
    assert [(ranked.id, ranked.usage.total.gpu_ms) for ranked in await usage.guilds(MONTH)] == [(20, 9000), (10, 4500)]


async def test_a_job_outside_any_server_is_added_under_guild_zero(store: JobStore, usage: UsageStore) -> None:
    """A job started in a DM counts for its member and the bot, and under guild 0 (never a real server's sums)."""
    await running_job(store, user_id=5, guild_id=None)
    claimed = await claim(store)
    assert await store.apply_one(finish(claimed, charge_for(claimed))) is not None
    assert [ranked.id for ranked in await usage.guilds(MONTH)] == [0]
    (member,) = await usage.member(5, [MONTH])
    assert member.total.jobs == 1


async def test_day_sums_expire_after_35_days_and_month_sums_after_400(store: JobStore, redis: aioredis.Redis) -> None:
    """Every key a job adds to carries a TTL: about 35 days for the day's, about 400 for the month's."""
    await running_job(store)
    claimed = await claim(store)
    charge = charge_for(claimed)
    assert await store.apply_one(finish(claimed, charge)) is not None
    keys = charge.keys(store.keys)
    ttls = [await redis.ttl(key) for key in keys]
    day_ttls, month_ttls = ttls[: len(keys) // 2], ttls[len(keys) // 2 :]
    assert DAY_TTL_S == 35 * DAY_S
    assert MONTH_TTL_S == 400 * DAY_S
    assert all(DAY_TTL_S - 60 < ttl <= DAY_TTL_S for ttl in day_ttls), day_ttls
    assert all(MONTH_TTL_S - 60 < ttl <= MONTH_TTL_S for ttl in month_ttls), month_ttls


def test_the_day_and_month_are_utc() -> None:
    """A job that ends at 01:30 in UTC+2 on July 1st is June 30th's and June's (UTC)."""
    from datetime import timedelta, timezone

    moment = datetime(2025, 7, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert (day_period(moment), month_period(moment)) == ("day:2025-06-30", "month:2025-06")
