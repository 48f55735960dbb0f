"""The poller against the emulator: every job reaches its right final state and is handed over exactly once."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web
from PIL import Image

from jobs.access import Actor
from jobs.logcontext import current_job
from jobs.policy import PollPolicy
from jobs.poller import Poller, PollerSettings
from jobs.presets import RequestOptions
from jobs.service import RunSettings
from runpod_client import NO_RETRY, Job, JobStatus
from runpod_emulator import FaultKind
from storage.models import JobState, Requester
from storage.store import JobStore, NewJob
from tests.integration.jobs.conftest import (
    FAST_POLICY,
    FAST_POLLER,
    LOOPBACK_FETCH,
    Core,
    RecordingNotifier,
    polling,
    wait_until,
)
from tests.plugins.emulator import client_for

MEMBER = Requester(user_id=1, guild_id=2, channel_id=3)
# How long the slow image host takes to answer: several claim leases of the tests that use it.
SLOW_DOWNLOAD_S = 0.9


async def submit(core: Core, prompt: str, *, user_id: int = 1, service_ttl_ms: int | None = None) -> str:
    service = core.service
    if service_ttl_ms is not None:
        service = core.service_with(RunSettings(ttl_ms=service_ttl_ms))
    submission = await service.submit(RequestOptions(prompt=prompt), Requester(user_id=user_id, guild_id=2))
    return submission.job.jid


async def test_completed_job_is_delivered_with_its_images(core: Core) -> None:
    """A finished job reaches the notifier once, with decodable PNG images, and ends DELIVERED."""
    notifier = RecordingNotifier()
    jid = await submit(core, "a castle")
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.COMPLETED
    assert result.images
    assert result.images[0].data.startswith(b"\x89PNG")
    job = await core.store.get(jid)
    assert job is not None
    assert job.state is JobState.DELIVERED
    assert job.execution_time_ms is not None
    assert job.result_message_ids == [1]


async def test_what_the_poller_logs_about_a_job_carries_its_id(core: Core) -> None:
    """Every record logged while a job is polled and delivered names the job (LOG_FORMAT=json's `job_id`)."""
    notifier = RecordingNotifier()
    seen: list[str | None] = []
    notifier.on_finish = lambda _job, _result: seen.append(current_job.get())
    jid = await submit(core, "a logged castle")
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
    assert seen == [jid]


async def test_progress_is_reported_while_running(core: Core) -> None:
    """A running job's step progress reaches the notifier as it changes."""
    core.emulator.update_scenario(execution_s=1.0)
    notifier = RecordingNotifier()
    submission = await core.service.submit(RequestOptions(prompt="a slow castle", steps=5), MEMBER)
    jid = submission.job.jid
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
    progress = [update.progress for update in notifier.updates if update.jid == jid and update.progress]
    assert progress
    assert all(text.endswith("/5") for text in progress), progress
    assert any(update.state is JobState.RUNNING for update in notifier.updates)


async def test_two_hundred_mixed_jobs_each_reach_the_right_state_once(core: Core) -> None:
    """Completed, failed, cancelled, timed-out and expired jobs all end right, each finished exactly once."""
    expected: dict[str, JobState] = {}
    for index in range(200):
        kind = index % 5
        if kind == 0:
            expected[await submit(core, f"ok {index}", user_id=index)] = JobState.COMPLETED
        elif kind == 1:
            expected[await submit(core, f"[emulator:fail-json] {index}", user_id=index)] = JobState.FAILED
        elif kind == 2:
            jid = await submit(core, f"[emulator:hang] {index}", user_id=index)
            await core.service.cancel(jid, Actor(user_id=index))
            expected[jid] = JobState.CANCELLED
        elif kind == 3:
            service = core.service_with(RunSettings(execution_timeout_ms=300))
            submission = await service.submit(
                RequestOptions(prompt=f"[emulator:hang] {index}"), Requester(user_id=index)
            )
            expected[submission.job.jid] = JobState.TIMED_OUT
        else:
            expected[await submit(core, f"[emulator:hang] {index}", user_id=index, service_ttl_ms=300)] = (
                JobState.EXPIRED
            )
    notifier = RecordingNotifier()
    async with polling(core.poller(notifier)):
        await wait_until(lambda: len(notifier.finished) == len(expected), timeout_s=60)
    assert all(len(results) == 1 for results in notifier.finished.values())
    assert {jid: notifier.outcome(jid) for jid in expected} == expected
    failed = [notifier.finished[jid][0] for jid, state in expected.items() if state is JobState.FAILED]
    assert all(result.reason and "Traceback" not in result.reason for result in failed)
    jobs = await core.store.get_many(list(expected))
    assert {job.state for job in jobs} == {JobState.DELIVERED}


async def test_two_pollers_on_one_redis_deliver_each_job_once(core: Core) -> None:
    """Two processes' pollers share the work: every job is finished by exactly one of them."""
    jids = [await submit(core, f"shared {index}", user_id=index) for index in range(60)]
    first, second = RecordingNotifier(), RecordingNotifier()
    async with polling(core.poller(first)), polling(core.poller(second)):
        await wait_until(lambda: len(first.finished) + len(second.finished) >= len(jids))
        await asyncio.sleep(0.3)
    calls = Counter(jid for notifier in (first, second) for jid, results in notifier.finished.items() for _ in results)
    assert set(calls) == set(jids)
    assert set(calls.values()) == {1}


@pytest.fixture
async def slow_image_host() -> AsyncIterator[str]:
    """A loopback image host that answers each download only after SLOW_DOWNLOAD_S; yields the image's URL."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buffer, format="PNG")

    async def serve(_request: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_DOWNLOAD_S)
        return web.Response(body=buffer.getvalue(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/slow.png", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slow.png"
    finally:
        await runner.cleanup()


async def test_result_whose_images_download_slower_than_the_claim_lease_is_delivered_once(
    core: Core, slow_image_host: str
) -> None:
    """A finished job whose image takes longer to download than the claim lease is still delivered, once."""
    core.emulator.update_scenario(personality="custom", custom_output={"image_url": slow_image_host})
    jid = await submit(core, "a slow download")
    notifier = RecordingNotifier()
    settings = replace(FAST_POLLER, claim_lease_ms=round(SLOW_DOWNLOAD_S * 1000 / 3))
    async with polling(core.poller(notifier, settings)):
        await wait_until(lambda: delivered(core, jid), timeout_s=10 * SLOW_DOWNLOAD_S)
    assert len(notifier.finished[jid]) == 1
    assert notifier.finished[jid][0].images


async def test_delivery_slower_than_its_lease_is_not_posted_again_by_another_poller(core: Core) -> None:
    """A delivery that outlasts the delivery lease keeps the job: the other poller never posts it a second time."""
    jid = await submit(core, "a slow upload")
    slow_s = FAST_POLICY.delivery_lease_ms * 3 / 1000
    first, second = RecordingNotifier(slow_s={jid: slow_s}), RecordingNotifier(slow_s={jid: slow_s})
    async with polling(core.poller(first)), polling(core.poller(second)):
        await wait_until(lambda: delivered(core, jid), timeout_s=10 * slow_s)
    assert len(first.finished.get(jid, [])) + len(second.finished.get(jid, [])) == 1


async def test_stopped_poller_hands_its_jobs_to_a_later_one(core: Core) -> None:
    """A poller stopped mid-run releases its jobs; a new one started later finishes every job, once."""
    core.emulator.update_scenario(execution_s=0.6)
    jids = [await submit(core, f"handover {index}", user_id=index) for index in range(30)]
    first = RecordingNotifier()
    async with polling(core.poller(first)):
        await asyncio.sleep(0.3)
    assert len(first.finished) < len(jids)
    second = RecordingNotifier()
    async with polling(core.poller(second)):
        await wait_until(lambda: len(first.finished) + len(second.finished) == len(jids))
    assert not set(first.finished) & set(second.finished)


async def test_crash_during_delivery_leads_to_one_more_delivery(core: Core) -> None:
    """A process that dies between finalize begin and commit: the next poller delivers the job again."""
    jid = await submit(core, "a crash")
    crashing = RecordingNotifier(hang={jid})
    poller = core.poller(crashing)
    task = asyncio.create_task(poller.run())

    async def delivering() -> bool:
        job = await core.store.get(jid)
        return job is not None and job.state is JobState.COMPLETED

    await wait_until(delivering)
    # The process dies: its tasks stop without releasing anything.
    task.cancel()
    for in_flight in list(poller._in_flight):
        in_flight.cancel()
    survivor = RecordingNotifier()
    async with polling(core.poller(survivor)):
        await wait_until(lambda: jid in survivor.finished)
    assert survivor.outcome(jid) is JobState.COMPLETED
    assert survivor.finished[jid][0].images


async def test_failed_delivery_is_retried_until_it_succeeds(core: Core) -> None:
    """A notifier that fails twice is called again; the job is delivered on the third attempt."""
    notifier = RecordingNotifier()
    jid = await submit(core, "flaky delivery")
    notifier.fail_times[jid] = 2
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
    assert notifier.fail_times[jid] == 0
    assert len(notifier.finished[jid]) == 1


async def delivered(core: Core, jid: str) -> bool:
    job = await core.store.get(jid)
    return job is not None and job.state is JobState.DELIVERED


async def test_delivery_failing_every_attempt_ends_with_the_failure_shown_and_recorded(core: Core) -> None:
    """After max_delivery_attempts failures the notifier is told once that delivery gave up, and the record says why."""
    notifier = RecordingNotifier()
    jid = await submit(core, "never delivered")
    notifier.fail_times[jid] = 3
    async with polling(core.poller(notifier, replace(FAST_POLLER, max_delivery_attempts=3))):
        await wait_until(lambda: jid in notifier.finished)
        await wait_until(lambda: delivered(core, jid))
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.COMPLETED
    assert result.undelivered is not None
    assert "after 3 attempts" in result.undelivered
    job = await core.store.get(jid)
    assert job is not None
    assert job.extra["delivery_failed"] == result.undelivered


async def test_delivery_refused_for_good_is_not_retried(core: Core) -> None:
    """A final refusal ends the job after one attempt: the notifier is told why, and nothing is sent again."""
    notifier = RecordingNotifier()
    jid = await submit(core, "refused")
    notifier.refuse[jid] = "Discord refused to post the images: Invalid Form Body (HTTP 400, error 50035)"
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
        await wait_until(lambda: delivered(core, jid))
    (result,) = notifier.finished[jid]
    assert result.undelivered == "Discord refused to post the images: Invalid Form Body (HTTP 400, error 50035)"
    job = await core.store.get(jid)
    assert job is not None
    assert "delivery_attempts" not in job.extra


async def test_crash_before_attach_becomes_submit_unknown(core: Core) -> None:
    """A record left SUBMITTING (the submitter died before storing RunPod's id) is reported, not resubmitted."""
    created = await core.store.create(
        NewJob(jid=uuid.uuid4().hex[:16], endpoint_id=core.emulator.endpoint_id, model="default", user_id=5)
    )
    notifier = RecordingNotifier()
    async with polling(core.poller(notifier)):
        await wait_until(lambda: created.jid in notifier.finished)
    (result,) = notifier.finished[created.jid]
    assert result.outcome is JobState.SUBMIT_UNKNOWN
    assert result.reason is not None
    assert "not sent again" in result.reason
    assert core.emulator.snapshot()["received"].get("run", 0) == 0


async def test_result_after_a_cancel_request_is_not_posted(core: Core) -> None:
    """If RunPod finishes a job whose cancel request did not get through, its images are not delivered."""
    core.emulator.update_scenario(execution_s=0.4)
    jid = await submit(core, "a late result")
    core.emulator.script_faults("cancel", *[FaultKind.SERVER_ERROR] * 50)
    await core.service.cancel(jid, Actor(user_id=MEMBER.user_id))
    notifier = RecordingNotifier()
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.CANCELLED
    assert not result.images


async def test_status_errors_do_not_stop_the_loop(core: Core) -> None:
    """Injected 5xx, 429 and resets on /status delay jobs but every one is still delivered."""
    core.emulator.update_scenario(
        faults={"status": {"server_error": 0.2, "rate_limited": 0.1, "reset": 0.1}}, fault_retry_after_s=0
    )
    jids = [await submit(core, f"faulty {index}", user_id=index) for index in range(20)]
    notifier = RecordingNotifier()
    async with polling(core.poller(notifier)):
        await wait_until(lambda: len(notifier.finished) == len(jids), timeout_s=30)
    assert {notifier.outcome(jid) for jid in jids} == {JobState.COMPLETED}


async def test_shared_budget_keeps_status_calls_under_runpods_limit(core: Core) -> None:
    """With a budget of 10 /status calls a second, an endpoint limited to 25 a second never answers 429."""
    core.emulator.update_scenario(rate_limits={"status": {"requests": 25, "per_s": 1.0}})
    jids = [await submit(core, f"budget {index}", user_id=index) for index in range(40)]
    notifier = RecordingNotifier()
    settings = replace(FAST_POLLER, status_budget_per_s=10)
    async with polling(core.poller(notifier, settings)):
        await wait_until(lambda: len(notifier.finished) == len(jids), timeout_s=30)
    assert core.emulator.counters.request_count("status") >= len(jids)
    assert core.emulator.counters.request_count("status", 429) == 0


async def cycle_round_trips(core: Core, jobs: int) -> int:
    """Redis round trips of one poll cycle over `jobs` queued jobs (claim, /status calls, writes)."""
    await core.store.redis.flushdb()
    for index in range(jobs):
        await submit(core, f"queued {index}", user_id=index)
    await asyncio.sleep(FAST_POLICY.first_poll_ms / 1000 + 0.05)
    # Its own store, so only this poller's round trips are counted; a wide window, so slow replies do not split
    # the cycle's writes; a lease that outlasts the window, so a slow cycle needs no lease renewal.
    store = JobStore(core.store.redis, core.store.config)
    poller = Poller(
        store,
        core.clients,
        RecordingNotifier(),
        http=core.http,
        fetch_policy=LOOPBACK_FETCH,
        policy=FAST_POLICY,
        settings=replace(FAST_POLLER, write_window_ms=2_000, claim_lease_ms=10_000),
    )
    assert await poller.run_once() == jobs
    await poller.drain()
    assert poller.stats.status_calls == jobs
    return store.round_trips


async def test_busy_poll_cycle_costs_the_same_round_trips_whatever_its_size(core: Core) -> None:
    """Polling 60 jobs in a cycle costs Redis no more round trips than polling 3."""
    core.emulator.update_scenario(workers=0)
    small = await cycle_round_trips(core, 3)
    large = await cycle_round_trips(core, 60)
    assert large == small
    # One claim, one write.
    assert large == 2


async def test_every_status_attempt_stays_within_the_budget(core: Core) -> None:
    """With no-retry /status clients, failing calls are retried through the budget: no 429 from a tight limit."""
    core.emulator.update_scenario(
        rate_limits={"status": {"requests": 14, "per_s": 1.0}}, faults={"status": {"server_error": 0.5}}
    )
    jids = [await submit(core, f"budget {index}", user_id=index) for index in range(20)]
    notifier = RecordingNotifier()
    poller = Poller(
        core.store,
        core.clients,
        notifier,
        http=core.http,
        fetch_policy=LOOPBACK_FETCH,
        policy=FAST_POLICY,
        settings=replace(FAST_POLLER, status_budget_per_s=10),
        status_clients={core.client.endpoint_id: client_for(core.emulator, core.http, retry=NO_RETRY)},
    )
    async with polling(poller):
        await wait_until(lambda: len(notifier.finished) == len(jids), timeout_s=30)
    assert {notifier.outcome(jid) for jid in jids} == {JobState.COMPLETED}
    assert core.emulator.counters.request_count("status", 500) > 0
    assert core.emulator.counters.request_count("status", 429) == 0


async def test_oldest_queued_job_is_polled_more_often(core: Core) -> None:
    """While no worker is free, the job next in line is polled more often than the jobs behind it."""
    core.emulator.update_scenario(workers=0)
    jids = []
    for index in range(5):
        jids.append(await submit(core, f"waiting {index}", user_id=index))
        # Submits in the same millisecond tie in the queue, ordered by job id: keep these apart.
        await asyncio.sleep(0.005)
    policy = PollPolicy(
        first_poll_ms=50, queued_min_ms=100, queued_factor=2.0, queued_max_ms=2_000, next_in_line_ms=100, jitter=0.0
    )
    poller = Poller(
        core.store, core.clients, RecordingNotifier(), http=core.http, fetch_policy=LOOPBACK_FETCH, policy=policy,
        settings=PollerSettings(idle_sleep_s=0.02, write_window_ms=10),
    )  # fmt: skip
    async with polling(poller):
        await asyncio.sleep(1.5)
    polls = {job.jid: job.poll_count for job in await core.store.get_many(jids)}
    assert polls[jids[0]] >= 2 * polls[jids[-1]], polls


async def test_webhook_job_handed_to_a_stopping_poller_goes_back_at_once(core: Core) -> None:
    """A job taken for its webhook just as the poller stops is due again at once, for another process."""
    jid = await submit(core, "a late webhook")
    poller = core.poller(RecordingNotifier())
    await poller.stop()
    taken = await core.store.take_for_webhook(core.emulator.endpoint_id, jid, lease_ms=60_000)
    assert taken.claimed is not None
    poller.adopt(taken.claimed, Job(id=taken.claimed.job.runpod_id or "", status=JobStatus.COMPLETED))

    async def claimable() -> bool:
        batch = await core.store.claim_due(core.emulator.endpoint_id, limit=1, lease_ms=60_000)
        return [claim.job.jid for claim in batch.jobs] == [jid]

    await wait_until(claimable, timeout_s=5)
