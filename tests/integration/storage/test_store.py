"""JobStore on a real Redis: leases, fencing, idempotent finalize, quotas, and TTLs on what stops changing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from storage.keys import Keys
from storage.models import JobState
from storage.store import (
    Claimed,
    Commit,
    Committed,
    CooldownError,
    FinalizeBegin,
    FinalizeCommit,
    Finalizing,
    JobStore,
    Limits,
    NewJob,
    QuotaExceededError,
    RecordError,
    Release,
    Released,
    Reschedule,
    Rescheduled,
    StoreConfig,
)

ENDPOINT = "ep-test"
LEASE_MS = 200


@pytest.fixture
def store(redis: aioredis.Redis) -> JobStore:
    """A store with a short submit lease, so tests can watch leases run out."""
    return JobStore(redis, StoreConfig(submit_lease_ms=LEASE_MS))


def new_job(user_id: int = 1, guild_id: int | None = 10, request_id: str | None = None) -> NewJob:
    return NewJob(
        jid=uuid.uuid4().hex,
        endpoint_id=ENDPOINT,
        model="sdxl",
        user_id=user_id,
        guild_id=guild_id,
        channel_id=100,
        request_id=request_id,
        request={"prompt": "a cat", "seed": 7},
    )


async def queued_job(store: JobStore, user_id: int = 1, guild_id: int | None = 10) -> str:
    """Create a job and attach a RunPod id so it is QUEUED and due at once."""
    created = await store.create(new_job(user_id=user_id, guild_id=guild_id))
    job = await store.get(created.jid)
    assert job is not None
    assert await store.attach_runpod_id(job, f"rp-{created.jid}", first_poll_delay_ms=0) is not None
    return created.jid


async def claim_one(store: JobStore, lease_ms: int = LEASE_MS) -> Claimed:
    batch = await store.claim_due(ENDPOINT, limit=1, lease_ms=lease_ms)
    assert len(batch.jobs) == 1
    return batch.jobs[0]


async def test_created_job_is_recorded_with_its_request(store: JobStore) -> None:
    """A new job is SUBMITTING, with the requester and parameters stored."""
    created = await store.create(new_job(user_id=5, guild_id=9))
    job = await store.get(created.jid)
    assert job is not None
    assert job.state is JobState.SUBMITTING
    assert (job.user_id, job.guild_id, job.channel_id) == (5, 9, 100)
    assert job.request == {"prompt": "a cat", "seed": 7}
    assert job.created_at.tzinfo is not None


async def test_same_request_id_creates_one_job(store: JobStore) -> None:
    """A repeated request id (a retried interaction) returns the first job instead of a second one."""
    first = await store.create(new_job(request_id="interaction-1"))
    second = await store.create(new_job(request_id="interaction-1"))
    assert second.duplicate
    assert second.jid == first.jid
    assert len(await store.user_recent(1)) == 1


async def test_a_create_sent_again_after_a_lost_reply_is_the_same_creation(store: JobStore) -> None:
    """The very create resent (Redis ran it, the reply was lost, the client sent it again on a new connection) is
    answered as created, not as its own duplicate: the submit goes on to /run instead of stalling the job."""
    job = new_job(request_id="interaction-resent")
    limits = Limits(cooldown_ms=5000)
    first = await store.create(job, limits)
    again = await store.create(job, limits)
    assert not again.duplicate
    assert (again.jid, again.token) == (first.jid, first.token)
    assert len(await store.user_active(job.user_id)) == 1
    assert (await store.counts())["state:SUBMITTING"] == 1


async def test_two_concurrent_claims_never_return_the_same_job(store: JobStore) -> None:
    """Many claimers racing over the same due jobs each get distinct jobs, and every job is claimed once."""
    jids = {await queued_job(store) for _ in range(40)}
    batches = await asyncio.gather(*(store.claim_due(ENDPOINT, limit=7, lease_ms=10_000) for _ in range(10)))
    claimed = [claim.job.jid for batch in batches for claim in batch.jobs]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == jids


async def test_leased_job_is_not_claimable_until_the_lease_runs_out(store: JobStore) -> None:
    """A claimed job is invisible to other claimers, then claimable again once its lease expires."""
    await queued_job(store)
    first = await claim_one(store)
    assert (await store.claim_due(ENDPOINT, limit=10, lease_ms=LEASE_MS)).jobs == []
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    second = await claim_one(store)
    assert second.job.jid == first.job.jid
    assert second.token > first.token


async def test_old_holder_cannot_commit_after_losing_its_lease(store: JobStore) -> None:
    """Once another process re-claims an expired lease, the first holder's reschedule and finalize are refused."""
    await queued_job(store)
    stale = await claim_one(store)
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    fresh = await claim_one(store, lease_ms=10_000)
    assert await store.reschedule(stale, 1000, state=JobState.RUNNING) is None
    assert await store.finalize_begin(stale, JobState.COMPLETED, lease_ms=1000) is None
    job = await store.get(fresh.job.jid)
    assert job is not None
    assert job.state is JobState.QUEUED


async def test_reschedule_records_progress_and_state(store: JobStore) -> None:
    """A reschedule stores what the poll learned, counts the poll and moves the state."""
    await queued_job(store)
    claim = await claim_one(store)
    moved = await store.reschedule(
        claim, 5000, state=JobState.RUNNING, fields={"runpod_status": "IN_PROGRESS", "progress": "3/30"}
    )
    assert moved is not None
    job = await store.get(claim.job.jid)
    assert job is not None
    assert job.state is JobState.RUNNING
    assert job.progress == "3/30"
    assert job.poll_count == 1
    assert job.started_at is not None
    assert (await store.counts()).get("state:RUNNING") == 1


async def test_finalize_commit_is_idempotent_and_leaves_no_index_entry(store: JobStore, redis: aioredis.Redis) -> None:
    """Committing twice succeeds both times, and the job is gone from the schedule and every active index."""
    jid = await queued_job(store, user_id=3, guild_id=30)
    claim = await claim_one(store)
    delivering = await store.finalize_begin(claim, JobState.COMPLETED, lease_ms=10_000)
    assert delivering is not None
    assert await store.finalize_commit(delivering, fields={"result_message_ids": [111, 222]})
    assert await store.finalize_commit(delivering)
    keys = Keys()
    assert await redis.zscore(keys.due(ENDPOINT), jid) is None
    assert await redis.zscore(keys.user_active(3), jid) is None
    assert await redis.zscore(keys.guild_active(30), jid) is None
    job = await store.get(jid)
    assert job is not None
    assert job.state is JobState.DELIVERED
    assert job.outcome is JobState.COMPLETED
    assert job.result_message_ids == [111, 222]
    assert (await store.counts()) == {"delivered:COMPLETED": 1}


async def test_crash_between_begin_and_commit_leads_to_another_delivery(store: JobStore) -> None:
    """A delivery lease that runs out without a commit hands the finished job to the next claimer."""
    jid = await queued_job(store)
    claim = await claim_one(store)
    assert await store.finalize_begin(claim, JobState.COMPLETED, lease_ms=LEASE_MS) is not None
    # The process "crashes" here: no commit.
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    again = await claim_one(store)
    assert again.job.jid == jid
    assert again.job.state is JobState.COMPLETED


async def test_finished_job_leaves_the_active_quota_at_begin(store: JobStore) -> None:
    """A job whose GPU work ended no longer counts against the user's active quota, even before delivery."""
    await queued_job(store, user_id=4)
    claim = await claim_one(store)
    await store.finalize_begin(claim, JobState.FAILED, lease_ms=10_000, fields={"error": "out of memory"})
    assert await store.user_active(4) == []
    job = await store.get(claim.job.jid)
    assert job is not None
    assert job.error == "out of memory"


async def test_user_quota_holds_under_concurrent_submits(store: JobStore) -> None:
    """Fifty simultaneous submits by one member with a quota of 3 create exactly 3 jobs."""
    results = await asyncio.gather(
        *(store.create(new_job(user_id=7), Limits(user_active=3)) for _ in range(50)), return_exceptions=True
    )
    created = [result for result in results if not isinstance(result, BaseException)]
    refused = [result for result in results if isinstance(result, QuotaExceededError)]
    assert len(created) == 3
    assert len(refused) == 47
    assert refused[0].scope == "user"
    assert refused[0].limit == 3


async def test_guild_quota_counts_every_member(store: JobStore) -> None:
    """The guild's active-job limit counts jobs from all its members."""
    limits = Limits(user_active=5, guild_active=2)
    await store.create(new_job(user_id=1, guild_id=50), limits)
    await store.create(new_job(user_id=2, guild_id=50), limits)
    with pytest.raises(QuotaExceededError) as caught:
        await store.create(new_job(user_id=3, guild_id=50), limits)
    assert caught.value.scope == "guild"


async def test_cooldown_refuses_with_the_time_left(store: JobStore) -> None:
    """A second submit within the cooldown is refused with how long to wait."""
    await store.create(new_job(user_id=8), Limits(cooldown_ms=30_000))
    with pytest.raises(CooldownError) as caught:
        await store.create(new_job(user_id=8), Limits(cooldown_ms=30_000))
    assert 25_000 < caught.value.retry_after_ms <= 30_000


async def test_submit_lease_expiry_hands_an_unattached_job_to_the_poller(store: JobStore) -> None:
    """A job whose submitter crashed before attaching the RunPod id becomes claimable when the lease ends."""
    created = await store.create(new_job())
    assert (await store.claim_due(ENDPOINT, limit=10, lease_ms=1000)).jobs == []
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    claim = await claim_one(store)
    assert claim.job.jid == created.jid
    assert claim.job.state is JobState.SUBMITTING
    assert claim.job.runpod_id is None


async def test_late_attach_revives_a_job_marked_submit_unknown(store: JobStore) -> None:
    """A /run that answered after the poller gave up still gets its job tracked: a paid job is never dropped."""
    created = await store.create(new_job(user_id=9))
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    claim = await claim_one(store)
    assert await store.finalize_begin(claim, JobState.SUBMIT_UNKNOWN, lease_ms=10_000) is not None
    assert await store.attach_runpod_id(claim.job, "rp-late", first_poll_delay_ms=0) is not None
    job = await store.get(created.jid)
    assert job is not None
    assert job.state is JobState.QUEUED
    assert job.runpod_id == "rp-late"
    assert [active.jid for active in await store.user_active(9)] == [created.jid]


async def test_claim_respects_the_shared_status_budget(store: JobStore) -> None:
    """Claims from several processes in one second never exceed the endpoint's per-second budget."""
    for _ in range(30):
        await queued_job(store)
    batches = await asyncio.gather(
        *(store.claim_due(ENDPOINT, limit=30, lease_ms=10_000, budget_per_second=12, burst_ms=1000) for _ in range(4))
    )
    total = sum(len(batch.jobs) for batch in batches)
    # Claims may straddle a second boundary, which legitimately opens a new second's budget.
    assert 12 <= total <= 24
    assert min(batch.budget_left for batch in batches) >= 0


async def test_cancel_request_makes_a_queued_job_due_at_once(store: JobStore) -> None:
    """Asking to cancel records who asked, once, and the job is due immediately."""
    jid = await queued_job(store)
    claim = await claim_one(store, lease_ms=60_000)
    first = await store.request_cancel(claim.job, actor_id=42)
    second = await store.request_cancel(claim.job, actor_id=43)
    assert first.first
    assert not second.first
    assert second.requested_by == 42
    again = await claim_one(store)
    assert again.job.jid == jid
    assert again.job.cancel_requested_by == 42


async def test_release_makes_held_jobs_due_immediately(store: JobStore) -> None:
    """On graceful shutdown, released jobs are claimable at once by another process."""
    await queued_job(store)
    held = await claim_one(store, lease_ms=60_000)
    assert await store.release([held]) == 1
    taken = await claim_one(store)
    assert taken.job.jid == held.job.jid


async def test_due_lag_reports_how_late_the_oldest_job_is(store: JobStore) -> None:
    """The due lag is zero for a fresh job and grows while the job waits unclaimed."""
    await queued_job(store)
    await asyncio.sleep(0.15)
    assert await store.due_lag_ms(ENDPOINT) >= 100
    await claim_one(store, lease_ms=60_000)
    assert await store.due_lag_ms(ENDPOINT) == 0


async def test_everything_that_stops_changing_has_a_ttl(store: JobStore, redis: aioredis.Redis) -> None:
    """Delivered records, idempotency keys, cooldowns, RunPod lookups, history and budget counters all expire."""
    created = await store.create(new_job(user_id=11, request_id="req-ttl"), Limits(cooldown_ms=5000))
    job = await store.get(created.jid)
    assert job is not None
    await store.attach_runpod_id(job, "rp-ttl", first_poll_delay_ms=0)
    claim = (await store.claim_due(ENDPOINT, limit=1, lease_ms=5000, budget_per_second=100)).jobs[0]
    delivering = await store.finalize_begin(claim, JobState.COMPLETED, lease_ms=5000)
    assert delivering is not None
    assert await store.finalize_commit(delivering)
    keys = Keys()
    expiring = [
        keys.job(created.jid),
        keys.idempotency("req-ttl"),
        keys.user_cooldown(11),
        keys.runpod_job("rp-ttl"),
        keys.user_jobs(11),
        keys.status_budget(ENDPOINT),
    ]
    for key in expiring:
        assert await redis.pttl(key) > 0, key
    # What remains without a TTL is bounded: the stats hash and the set of endpoint ids.
    persistent = {key.decode() async for key in redis.scan_iter("*") if await redis.pttl(key) == -1}
    assert persistent == {keys.stats(), keys.endpoints()}


async def test_last_endpoint_error_is_kept_for_a_day(store: JobStore, redis: aioredis.Redis) -> None:
    """The latest RunPod error of an endpoint is readable with its time, and expires."""
    await store.record_endpoint_error(ENDPOINT, "RunPod status failed with HTTP 500: boom")
    error = await store.endpoint_error(ENDPOINT)
    assert error is not None
    assert error.message.endswith("boom")
    assert error.at.tzinfo is not None
    assert await redis.ttl(Keys().endpoint_error(ENDPOINT)) > 0


async def test_apply_runs_many_fenced_transitions_in_one_round_trip(store: JobStore) -> None:
    """A batch of reschedules and finalize begins costs one round trip; a lost lease refuses only its own op."""
    for _ in range(3):
        await queued_job(store)
    first, second, stale = (await store.claim_due(ENDPOINT, limit=3, lease_ms=LEASE_MS)).jobs
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    # Another process claims all three once their leases ran out: the first holder's tokens are stale.
    fresh = {claim.job.jid: claim for claim in (await store.claim_due(ENDPOINT, limit=3, lease_ms=60_000)).jobs}
    assert set(fresh) == {first.job.jid, second.job.jid, stale.job.jid}
    before = store.round_trips
    moved, finishing, refused = await store.apply(
        [
            Reschedule(fresh[first.job.jid], 5000, state=JobState.RUNNING),
            FinalizeBegin(fresh[second.job.jid], JobState.COMPLETED, lease_ms=5000),
            Reschedule(stale, 5000, state=JobState.RUNNING),
        ]
    )
    assert store.round_trips == before + 1
    assert isinstance(moved, Claimed)
    assert isinstance(finishing, Claimed)
    assert finishing.job.state is JobState.COMPLETED
    assert refused is None
    job = await store.get(stale.job.jid)
    assert job is not None
    assert job.state is JobState.QUEUED


async def test_budget_holds_in_every_sliding_second(store: JobStore) -> None:
    """Claiming as fast as possible for 1.5 s, no sliding second sees more than the budget plus its burst."""
    budget, burst_ms = 20, 250
    for _ in range(60):
        await queued_job(store)
    claims: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.5
    while loop.time() < end:
        batch = await store.claim_due(ENDPOINT, limit=60, lease_ms=60_000, budget_per_second=budget, burst_ms=burst_ms)
        claims.append((loop.time(), len(batch.jobs)))
        await asyncio.sleep(0.01)
    busiest = max(sum(n for at, n in claims if start <= at < start + 1.0) for start, _n in claims)
    assert busiest <= budget * (1 + burst_ms / 1000)
    assert sum(n for _at, n in claims) >= budget


async def test_claims_that_call_no_status_spend_no_budget(store: JobStore) -> None:
    """A job claimed only to be reported (its submit never finished) leaves the /status budget untouched."""
    await store.create(new_job())
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    batch = await store.claim_due(ENDPOINT, limit=10, lease_ms=60_000, budget_per_second=10, burst_ms=1000)
    assert [claim.job.state for claim in batch.jobs] == [JobState.SUBMITTING]
    assert batch.budget_left == 10


async def test_claim_tells_when_the_budget_and_the_next_job_allow_another(store: JobStore) -> None:
    """An exhausted budget says how long until it refills; the schedule says when the next job is due."""
    for _ in range(3):
        await queued_job(store)
    drained = await store.claim_due(ENDPOINT, limit=10, lease_ms=60_000, budget_per_second=2, burst_ms=1000)
    assert len(drained.jobs) == 2
    assert drained.budget_wait_ms > 0
    assert drained.next_due_ms == 0
    rest = await store.claim_due(ENDPOINT, limit=10, lease_ms=60_000)
    assert len(rest.jobs) == 1
    assert rest.next_due_ms is not None
    assert rest.next_due_ms > 50_000


async def test_claim_of_given_jobs_takes_only_those_and_times_the_next_by_them(store: JobStore) -> None:
    """A claim restricted to some jobs leaves every other due job alone and says when the next of its own is due."""
    mine, other = await queued_job(store), await queued_job(store)
    batch = await store.claim_due(ENDPOINT, limit=10, lease_ms=60_000, only={mine})
    assert [claim.job.jid for claim in batch.jobs] == [mine]
    assert batch.next_due_ms is not None
    assert batch.next_due_ms > 50_000
    assert (await store.claim_due(ENDPOINT, limit=10, lease_ms=60_000, only={"no-such-job"})).next_due_ms is None
    assert [claim.job.jid for claim in (await store.claim_due(ENDPOINT, limit=10, lease_ms=60_000)).jobs] == [other]


async def test_queued_jobs_know_their_place_in_the_queue(store: JobStore) -> None:
    """Claimed queued jobs carry their rank by submit order; a job that starts running leaves the queue."""
    jids = []
    for _ in range(3):
        jids.append(await queued_job(store))
        # Submits in the same millisecond tie, and ties are ordered by job id: keep these apart.
        await asyncio.sleep(0.005)
    claims = (await store.claim_due(ENDPOINT, limit=3, lease_ms=LEASE_MS)).jobs
    assert {claim.job.jid: claim.queue_rank for claim in claims} == {jids[0]: 0, jids[1]: 1, jids[2]: 2}
    oldest = next(claim for claim in claims if claim.job.jid == jids[0])
    await store.reschedule(oldest, 60_000, state=JobState.RUNNING)
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    again = (await store.claim_due(ENDPOINT, limit=3, lease_ms=LEASE_MS)).jobs
    assert {claim.job.jid: claim.queue_rank for claim in again} == {jids[1]: 0, jids[2]: 1}


async def test_webhook_takes_over_a_polled_job_and_the_poller_cannot_commit(store: JobStore) -> None:
    """A webhook takes a live job's lease; the poller that held it can no longer reschedule or finish it."""
    jid = await queued_job(store)
    polled = await claim_one(store, lease_ms=60_000)
    taken = await store.take_for_webhook(ENDPOINT, jid, lease_ms=60_000)
    assert taken.claimed is not None
    assert await store.reschedule(polled, 1000, state=JobState.RUNNING) is None
    assert await store.finalize_begin(polled, JobState.COMPLETED, lease_ms=1000) is None
    assert await store.finalize_begin(taken.claimed, JobState.COMPLETED, lease_ms=1000) is not None


async def test_webhook_leaves_a_job_being_delivered_alone(store: JobStore) -> None:
    """A webhook for a job whose outcome is already being delivered does not touch its delivery lease."""
    jid = await queued_job(store)
    delivering = await store.finalize_begin(await claim_one(store), JobState.COMPLETED, lease_ms=60_000)
    assert delivering is not None
    taken = await store.take_for_webhook(ENDPOINT, jid, lease_ms=60_000)
    assert (taken.status, taken.state) == ("finished", JobState.COMPLETED)
    assert await store.finalize_commit(delivering)


async def test_webhook_before_attach_makes_the_job_due_once_attached(store: JobStore) -> None:
    """A webhook that beats the /run reply keeps the submit lease, and the attached job is due at once."""
    created = await store.create(new_job())
    assert (await store.make_due_for_webhook(ENDPOINT, created.jid)).status == "submitting"
    assert (await store.claim_due(ENDPOINT, limit=10, lease_ms=1000)).jobs == []
    job = await store.get(created.jid)
    assert job is not None
    await store.attach_runpod_id(job, "rp-early", first_poll_delay_ms=60_000)
    assert (await claim_one(store)).job.jid == created.jid


async def test_completed_jobs_leave_execution_samples_for_every_process(store: JobStore, redis: aioredis.Redis) -> None:
    """A completed job's execution time is kept per endpoint, newest first, and the list expires."""
    for execution_ms in (4000, 6000):
        await queued_job(store)
        claim = await claim_one(store)
        await store.apply([FinalizeBegin(claim, JobState.COMPLETED, lease_ms=1000, execution_ms=execution_ms)])
    assert await store.execution_samples(ENDPOINT) == [6000, 4000]
    assert await redis.ttl(Keys().execution_samples(ENDPOINT)) > 0


async def test_each_batched_op_returns_its_own_result_type(store: JobStore) -> None:
    """In one `apply`, a reschedule gives a new lease, a finalize a delivery lease, a commit and a release their own
    answers, and an error note nothing."""
    for _ in range(3):
        await queued_job(store)
    rescheduled, finalized, released = (await store.claim_due(ENDPOINT, limit=3, lease_ms=60_000)).jobs
    moved, delivering, handed_back, noted = await store.apply(
        [
            Reschedule(rescheduled, 5000, state=JobState.RUNNING),
            FinalizeBegin(finalized, JobState.COMPLETED, lease_ms=5000),
            Release(released),
            RecordError(ENDPOINT, "boom"),
        ]
    )
    assert type(moved) is Rescheduled
    assert moved.token < rescheduled.token  # due in 5 s, sooner than the 60 s claim lease
    assert type(delivering) is Finalizing
    assert delivering.job.state is JobState.COMPLETED
    assert handed_back == Released(True)
    assert noted is None
    committed, again, stale = await store.apply(
        [FinalizeCommit(delivering), FinalizeCommit(delivering), Release(released)]
    )
    assert committed == Committed(Commit.DONE)
    assert again == Committed(Commit.ALREADY)
    assert stale == Released(False)
    assert not stale


async def test_ops_refused_for_a_lost_lease_say_so_in_their_result(store: JobStore) -> None:
    """Once the lease is lost, a reschedule and a finalize give None and a commit a false `Committed`."""
    await queued_job(store)
    stale = await claim_one(store)
    await asyncio.sleep(LEASE_MS / 1000 + 0.05)
    await claim_one(store, lease_ms=60_000)
    moved, finishing, committed = await store.apply(
        [
            Reschedule(stale, 1000),
            FinalizeBegin(stale, JobState.COMPLETED, lease_ms=1000),
            FinalizeCommit(stale),
        ]
    )
    assert moved is None
    assert finishing is None
    assert committed == Committed(Commit.LOST)
    assert not committed
