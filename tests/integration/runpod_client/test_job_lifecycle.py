"""Every job operation of the client, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from runpod_client import BadRequestError, JobStatus, NotFoundError, Policy, RunPodClient, parse_progress
from runpod_emulator import Emulator
from tests.plugins.emulator import poll_job

PROMPT = {"prompt": "a lighthouse at dusk", "seed": 7}


def collapsed(statuses: list[JobStatus]) -> list[JobStatus]:
    """The statuses without consecutive repeats."""
    return [status for index, status in enumerate(statuses) if index == 0 or status != statuses[index - 1]]


async def test_run_goes_from_queue_through_progress_to_completed(emulator_client: RunPodClient) -> None:
    """A submitted job is seen IN_QUEUE, then IN_PROGRESS, then COMPLETED."""
    submitted = await emulator_client.run(PROMPT)
    job, seen = await poll_job(emulator_client, submitted.id)
    assert submitted.status == JobStatus.IN_QUEUE
    assert collapsed([submitted.status, *(seen_job.status for seen_job in seen)]) == [
        JobStatus.IN_QUEUE,
        JobStatus.IN_PROGRESS,
        JobStatus.COMPLETED,
    ]
    assert job.output is not None


async def test_running_job_reports_advancing_step_progress(emulator_client: RunPodClient) -> None:
    """While IN_PROGRESS the output is a step count that only moves forward."""
    submitted = await emulator_client.run(PROMPT)
    _, seen = await poll_job(emulator_client, submitted.id, interval_s=0.005)
    progress = [parse_progress(job.output) for job in seen if job.status == JobStatus.IN_PROGRESS and job.output]
    fractions = [value.fraction for value in progress if value is not None]
    assert len(fractions) >= 2
    assert fractions == sorted(fractions)
    assert all(0 < fraction < 1 for fraction in fractions)


async def test_completed_job_reports_delay_execution_time_and_worker(emulator_client: RunPodClient) -> None:
    """A finished job carries delayTime, executionTime and workerId as RunPod sets them."""
    submitted = await emulator_client.run(PROMPT)
    job, _ = await poll_job(emulator_client, submitted.id)
    assert job.delay_time_ms is not None
    assert job.delay_time_ms >= 50
    assert job.execution_time_ms is not None
    assert job.execution_time_ms >= 200
    assert job.worker_id


async def test_run_sync_returns_the_finished_job_when_it_is_fast_enough(emulator_client: RunPodClient) -> None:
    """/runsync answers with the whole finished job when it ends within the wait."""
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    assert job.status == JobStatus.COMPLETED
    assert job.id.startswith("sync-")
    assert job.output is not None


async def test_run_sync_returns_an_id_to_poll_when_the_job_outlasts_the_wait(emulator_client: RunPodClient) -> None:
    """A job longer than the wait comes back live, with a sync- id that /status knows."""
    job = await emulator_client.run_sync({**PROMPT, "emulator": {"execution_s": 3}}, wait_ms=1_000)
    assert job.status in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)
    assert job.id.startswith("sync-")
    assert (await emulator_client.status(job.id)).status == JobStatus.IN_PROGRESS
    await emulator_client.cancel(job.id)


async def test_cancel_removes_a_queued_job(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """Cancelling a job that waits for a worker makes it CANCELLED, and it never runs."""
    emulator.update_scenario(workers=0)
    submitted = await emulator_client.run(PROMPT)
    cancelled = await emulator_client.cancel(submitted.id)
    emulator.update_scenario(workers=1)
    await asyncio.sleep(0.1)
    job = await emulator_client.status(submitted.id)
    assert cancelled.status == JobStatus.CANCELLED
    assert job.status == JobStatus.CANCELLED
    assert job.worker_id is None


async def test_late_result_never_overwrites_cancelled(emulator_client: RunPodClient) -> None:
    """A job cancelled while running stays CANCELLED, without output, after its run would have ended."""
    submitted = await emulator_client.run({**PROMPT, "emulator": {"execution_s": 0.3}})
    await poll_job(emulator_client, submitted.id, until=lambda job: job.status == JobStatus.IN_PROGRESS)
    await emulator_client.cancel(submitted.id)
    await asyncio.sleep(0.45)
    job = await emulator_client.status(submitted.id)
    assert job.status == JobStatus.CANCELLED
    assert job.output is None


async def test_cancel_of_a_finished_job_returns_its_state(emulator_client: RunPodClient) -> None:
    """Cancelling a COMPLETED job leaves it COMPLETED."""
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    assert (await emulator_client.cancel(job.id)).status == JobStatus.COMPLETED


async def test_retry_requeues_a_failed_job_under_the_same_id(emulator_client: RunPodClient) -> None:
    """/retry brings a FAILED job back to IN_QUEUE with its id, and it runs again."""
    submitted = await emulator_client.run({**PROMPT, "emulator": {"personality": "fail-plain"}})
    await poll_job(emulator_client, submitted.id)
    retried = await emulator_client.retry(submitted.id)
    job, _ = await poll_job(emulator_client, submitted.id)
    assert (retried.id, retried.status) == (submitted.id, JobStatus.IN_QUEUE)
    assert job.status == JobStatus.FAILED
    assert job.retries == 1


async def test_retry_of_a_completed_job_is_a_bad_request(emulator_client: RunPodClient) -> None:
    """Only FAILED and TIMED_OUT jobs can be retried."""
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    with pytest.raises(BadRequestError):
        await emulator_client.retry(job.id)


async def test_purge_queue_removes_only_the_queued_jobs(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """Purging leaves the running job alone and deletes the two waiting behind it."""
    emulator.update_scenario(workers=1)
    running = await emulator_client.run({**PROMPT, "emulator": {"execution_s": 0.3}})
    queued = [await emulator_client.run(PROMPT) for _ in range(2)]
    await poll_job(emulator_client, running.id, until=lambda job: job.status == JobStatus.IN_PROGRESS)
    result = await emulator_client.purge_queue()
    finished, _ = await poll_job(emulator_client, running.id)
    assert result.removed == 2
    assert finished.status == JobStatus.COMPLETED
    for job in queued:
        with pytest.raises(NotFoundError):
            await emulator_client.status(job.id)


async def test_health_counts_match_what_happened(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """After one success, one failure, one running and one queued job, /health says exactly that."""
    emulator.update_scenario(workers=1)
    await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    await emulator_client.run_sync({**PROMPT, "emulator": {"personality": "fail-json"}}, wait_ms=5_000)
    running = await emulator_client.run({**PROMPT, "emulator": {"execution_s": 2}})
    await emulator_client.run(PROMPT)
    await poll_job(emulator_client, running.id, until=lambda job: job.status == JobStatus.IN_PROGRESS)
    health = await emulator_client.health()
    assert (health.jobs.completed, health.jobs.failed) == (1, 1)
    assert (health.jobs.in_progress, health.jobs.in_queue) == (1, 1)
    assert (health.workers.running, health.workers.idle) == (1, 0)


async def test_stream_returns_the_result_once(emulator_client: RunPodClient) -> None:
    """/stream hands over the finished output, then nothing more."""
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    first = await emulator_client.stream(job.id)
    second = await emulator_client.stream(job.id)
    assert first.status == JobStatus.COMPLETED
    assert first.outputs == [job.output]
    assert second.outputs == []


async def test_unknown_job_is_not_found(emulator_client: RunPodClient) -> None:
    """/status of an id RunPod never gave is a 404."""
    with pytest.raises(NotFoundError):
        await emulator_client.status("00000000-0000-0000-0000-000000000000-u1")


async def test_policy_ttl_deletes_a_job_that_waited_too_long(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A job still queued when its policy.ttl runs out is gone: 404."""
    emulator.update_scenario(workers=0, strict_limits=False)
    job = await emulator_client.run(PROMPT, policy=Policy(ttl=200))
    await asyncio.sleep(0.3)
    with pytest.raises(NotFoundError):
        await emulator_client.status(job.id)


async def test_ignored_ttl_keeps_a_job_past_it(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """With `enforce_ttl` off, a job outlives its policy.ttl (a misbehaving RunPod), and its policy is recorded."""
    emulator.update_scenario(workers=0, strict_limits=False, enforce_ttl=False)
    job = await emulator_client.run(PROMPT, policy=Policy(ttl=200, execution_timeout=5_000))
    await asyncio.sleep(0.3)
    assert (await emulator_client.status(job.id)).status == JobStatus.IN_QUEUE
    assert emulator.received_policy(job.id) == {"ttl": 200, "executionTimeout": 5_000}


async def test_execution_timeout_ends_a_hung_job_timed_out(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A job running past policy.executionTimeout becomes TIMED_OUT."""
    emulator.update_scenario(strict_limits=False)
    submitted = await emulator_client.run(
        {**PROMPT, "emulator": {"personality": "hang"}}, policy=Policy(execution_timeout=300)
    )
    job, _ = await poll_job(emulator_client, submitted.id)
    assert job.status == JobStatus.TIMED_OUT


async def test_timed_out_job_can_be_retried(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """/retry accepts a TIMED_OUT job."""
    emulator.update_scenario(strict_limits=False)
    submitted = await emulator_client.run(
        {**PROMPT, "emulator": {"personality": "hang"}}, policy=Policy(execution_timeout=100)
    )
    await poll_job(emulator_client, submitted.id)
    assert (await emulator_client.retry(submitted.id)).status == JobStatus.IN_QUEUE


async def test_result_expires_after_retention(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A finished job's result disappears (404) once the retention time has passed."""
    emulator.update_scenario(runsync_retention_s=0.2)
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    assert (await emulator_client.status(job.id)).status == JobStatus.COMPLETED
    await asyncio.sleep(0.3)
    with pytest.raises(NotFoundError):
        await emulator_client.status(job.id)


async def test_status_ttl_shortens_the_retention(emulator_client: RunPodClient) -> None:
    """/status?ttl=ms asks RunPod to drop the result sooner."""
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    await emulator_client.status(job.id, ttl_ms=100)
    await asyncio.sleep(0.2)
    with pytest.raises(NotFoundError):
        await emulator_client.status(job.id)


class WebhookReceiver:
    """A local HTTP server that records webhook calls and answers with the given statuses, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.calls: list[dict[str, Any]] = []
        self.received = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(await request.json())
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received.set()
        return web.Response(status=status)


@pytest.fixture
async def webhook_server() -> AsyncIterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver([500, 503])
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield receiver, f"http://127.0.0.1:{port}/hook?token=secret"
    finally:
        await runner.cleanup()


async def test_webhook_receives_the_finished_job_after_retries(
    emulator_client: RunPodClient, webhook_server: tuple[WebhookReceiver, str]
) -> None:
    """The webhook gets the job object; two failed deliveries are retried and the third succeeds."""
    receiver, url = webhook_server
    job = await emulator_client.run(PROMPT, webhook=url)
    await asyncio.wait_for(receiver.received.wait(), 5)
    assert len(receiver.calls) == 3
    assert {call["id"] for call in receiver.calls} == {job.id}
    assert receiver.calls[-1]["status"] == "COMPLETED"
    assert receiver.calls[-1]["output"]


async def test_webhook_gives_up_after_the_configured_retries(
    emulator: Emulator, emulator_client: RunPodClient, webhook_server: tuple[WebhookReceiver, str]
) -> None:
    """With one retry configured, a receiver failing twice is called twice and no more."""
    emulator.update_scenario(webhook_retries=1)
    receiver, url = webhook_server
    job = await emulator_client.run(PROMPT, webhook=url)
    await poll_job(emulator_client, job.id)
    await asyncio.sleep(0.2)
    assert len(receiver.calls) == 2
    assert [record["status"] for record in emulator.snapshot()["webhooks"]] == [500, 503]


async def test_status_answers_post_as_the_go_sdk_sends_it(
    emulator: Emulator, emulator_session: aiohttp.ClientSession, emulator_client: RunPodClient
) -> None:
    """POST /status/{id} returns the same job object as GET."""
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    url = f"{emulator.base_url}/{emulator.endpoint_id}/status/{job.id}"
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    async with emulator_session.post(url, headers=headers) as response:
        body = await response.json()
    assert response.status == 200
    assert (body["id"], body["status"]) == (job.id, "COMPLETED")
