"""Models with `sync = true`: /runsync against the emulator, the result taken from the reply, and never sent twice."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from jobs.handoff import Handoff
from jobs.poller import Poller
from jobs.presets import ModelCatalog, ModelEntry, RequestOptions, build_model
from jobs.service import JobService, RunSettings, SubmitFailedError
from runpod_client import NotFoundError, RunPodClient
from runpod_emulator import FaultKind
from storage.models import JobState, Requester, TrackedJob
from tests.integration.jobs.conftest import FAST_POLICY, Core, RecordingNotifier, polling, wait_until
from tests.plugins.emulator import client_for

MEMBER = Requester(user_id=1001, guild_id=2001, channel_id=3001)


def sync_service(
    core: Core, wait_s: float = 3.0, *, client: RunPodClient | None = None, run_settings: RunSettings | None = None
) -> JobService:
    """A service whose one model is sent with /runsync, waiting `wait_s` for the result."""
    entry = ModelEntry(
        name="fast", endpoint_id=core.emulator.endpoint_id, preset="sdxl-turbo", sync=True, sync_wait_s=wait_s
    )
    client = client or core.client
    return JobService(
        core.store,
        {client.endpoint_id: client},
        ModelCatalog((build_model(entry),), "fast"),
        policy=FAST_POLICY,
        run_settings=run_settings or RunSettings(),
        handoff=Handoff(core.store),
    )


def requests(core: Core, operation: str) -> int:
    return core.emulator.counters.request_count(operation)


async def test_sync_job_finished_within_the_wait_is_delivered_from_the_reply(core: Core) -> None:
    """A job done within the wait is delivered from the /runsync reply: one /runsync, no /run, no /status."""
    notifier = RecordingNotifier()
    poller = core.poller(notifier)
    service = sync_service(core)
    service.handoff.attach(poller)
    async with polling(poller):
        submission = await service.submit(RequestOptions(prompt="a fox"), MEMBER)
        await wait_until(lambda: submission.job.jid in notifier.finished)
    (result,) = notifier.finished[submission.job.jid]
    assert result.outcome is JobState.COMPLETED
    assert result.images
    assert submission.result_in_hand
    assert (submission.job.runpod_id or "").startswith("sync-")
    assert (requests(core, "runsync"), requests(core, "run"), requests(core, "status")) == (1, 0, 0)


async def test_sync_job_that_outlives_the_wait_is_tracked_by_its_sync_id(core: Core) -> None:
    """A job still running when the wait ends is followed by its `sync-` id and delivered by polling."""
    core.emulator.update_scenario(execution_s=1.8)
    notifier = RecordingNotifier()
    poller = core.poller(notifier)
    service = sync_service(core, wait_s=1.0)
    service.handoff.attach(poller)
    async with polling(poller):
        submission = await service.submit(RequestOptions(prompt="a slow fox"), MEMBER)
        assert submission.job.state.is_live
        assert not submission.result_in_hand
        await wait_until(lambda: submission.job.jid in notifier.finished)
    assert notifier.outcome(submission.job.jid) is JobState.COMPLETED
    assert (submission.job.runpod_id or "").startswith("sync-")
    assert requests(core, "runsync") == 1
    assert requests(core, "status") >= 1


@pytest.mark.parametrize("fault", [FaultKind.RESET, FaultKind.SLOW])
async def test_runsync_cut_off_after_sending_is_never_resent(core: Core, fault: FaultKind) -> None:
    """A reset or a timeout after /runsync was sent ends SUBMIT_UNKNOWN, with exactly one /runsync at RunPod."""
    core.emulator.update_scenario(slow_reply_s=3.0)
    core.emulator.script_faults("runsync", fault)
    # The client's deadline is the wait plus this: a reply held 3 s longer times out.
    tight = client_for(core.emulator, core.http, timeout=aiohttp.ClientTimeout(total=0.5))
    with pytest.raises(SubmitFailedError) as caught:
        await sync_service(core, wait_s=1.0, client=tight).submit(RequestOptions(prompt="a fox"), MEMBER)
    assert caught.value.job.final_state is JobState.SUBMIT_UNKNOWN
    assert "not sent again" in caught.value.reason
    await asyncio.sleep(0.3)
    assert (requests(core, "runsync"), requests(core, "run")) == (1, 0)


async def test_sync_wait_does_not_hold_a_submit_slot(core: Core) -> None:
    """While one /runsync waits for its job, another submit gets the only slot instead of being refused as busy."""
    core.emulator.update_scenario(execution_s=1.0)
    service = sync_service(core, run_settings=RunSettings(concurrency=1, wait_s=0.3))
    first = asyncio.create_task(service.submit(RequestOptions(prompt="first"), MEMBER))
    await wait_until(lambda: requests(core, "runsync") == 1)
    second = await service.submit(RequestOptions(prompt="second"), Requester(user_id=1002))
    assert second.result_in_hand
    assert (await first).result_in_hand


async def test_sync_result_in_a_process_without_poller_is_delivered_by_another(core: Core) -> None:
    """A gateway (no poller) that gets the result in the reply leaves the job due; another process's poller posts it."""
    notifier = RecordingNotifier()
    submission = await sync_service(core).submit(RequestOptions(prompt="a fox"), MEMBER)
    async with polling(core.poller(notifier)):
        await wait_until(lambda: submission.job.jid in notifier.finished)
    assert notifier.outcome(submission.job.jid) is JobState.COMPLETED
    assert requests(core, "status") == 1


async def crash_while_delivering(core: Core) -> tuple[TrackedJob, Poller]:
    """Submit a sync job whose process records the result from the reply, then hangs (as dead) before posting it.

    Returns the job and the hung process's poller, to be stopped at the end of the test."""
    dying = RecordingNotifier()
    doomed = core.poller(dying)
    service = sync_service(core)
    service.handoff.attach(doomed)

    async def hang_its_delivery(job: TrackedJob) -> None:
        dying.hang.add(job.jid)

    submission = await service.submit(RequestOptions(prompt="a fox"), MEMBER, before_run=hang_its_delivery)

    async def outcome_recorded() -> bool:
        job = await core.store.get(submission.job.jid)
        return job is not None and job.state is JobState.COMPLETED

    await wait_until(outcome_recorded)
    assert dying.finished == {}
    return submission.job, doomed


async def test_crash_after_the_runsync_reply_is_delivered_once_by_status(core: Core) -> None:
    """A process that dies after the reply, before posting: another poller delivers it once, through /status."""
    job, doomed = await crash_while_delivering(core)
    notifier = RecordingNotifier()
    async with polling(core.poller(notifier)):
        await wait_until(lambda: job.jid in notifier.finished)
        await asyncio.sleep(0.5)
    await doomed.stop(timeout_s=0)
    (result,) = notifier.finished[job.jid]
    assert result.outcome is JobState.COMPLETED
    assert result.images
    assert requests(core, "status") == 1
    assert (await core.service.get(job.jid)).state is JobState.DELIVERED


async def test_sync_result_gone_after_runpods_minute_says_why(core: Core) -> None:
    """Past RunPod's 1-minute retention of a /runsync result, the card's reason says that is what lost the images."""
    core.emulator.update_scenario(runsync_retention_s=0.2)
    job, doomed = await crash_while_delivering(core)

    async def forgotten() -> bool:
        try:
            await core.client.status(job.runpod_id or "")
        except NotFoundError:
            return True
        return False

    await wait_until(forgotten)
    notifier = RecordingNotifier()
    async with polling(core.poller(notifier)):
        await wait_until(lambda: job.jid in notifier.finished)
    await doomed.stop(timeout_s=0)
    (result,) = notifier.finished[job.jid]
    assert result.outcome is JobState.EXPIRED
    assert "/runsync" in (result.reason or "")
    assert "1 minute" in (result.reason or "")
