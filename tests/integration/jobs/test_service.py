"""JobService against the emulator: what a member's submit and cancel do, and what they refuse."""

from __future__ import annotations

import pytest

from jobs.access import Actor
from jobs.presets import InvalidRequestError, RequestOptions
from jobs.service import CancelOutcome, CancelReport, NotAllowedError, RunSettings, SubmitFailedError
from runpod_emulator import FaultKind
from storage.models import JobState, Requester
from storage.store import Limits, QuotaExceededError
from tests.integration.jobs.conftest import Core

MEMBER = Requester(user_id=1001, guild_id=2001, channel_id=3001)


async def test_submit_records_the_job_with_runpod_id(core: Core) -> None:
    """An accepted request is QUEUED with RunPod's id, its resolved parameters and its requester."""
    submission = await core.service.submit(RequestOptions(prompt="a lighthouse", seed=11), MEMBER, request_id="i-1")
    job = submission.job
    assert job.state is JobState.QUEUED
    assert job.runpod_id is not None
    assert core.emulator.job(job.runpod_id) is not None
    assert job.request["prompt"] == "a lighthouse"
    assert job.request["seed"] == 11
    assert (job.user_id, job.guild_id, job.channel_id) == (1001, 2001, 3001)


async def test_repeated_request_id_sends_one_run(core: Core) -> None:
    """The same interaction submitted twice starts one paid job."""
    first = await core.service.submit(RequestOptions(prompt="a fox"), MEMBER, request_id="i-dup")
    second = await core.service.submit(RequestOptions(prompt="a fox"), MEMBER, request_id="i-dup")
    assert second.duplicate
    assert second.job.jid == first.job.jid
    assert core.emulator.snapshot()["received"].get("run") == 1


async def test_invalid_request_creates_nothing(core: Core) -> None:
    """An out-of-range option is refused before anything is stored or sent."""
    with pytest.raises(InvalidRequestError, match="steps"):
        await core.service.submit(RequestOptions(prompt="a fox", steps=999), MEMBER)
    assert await core.store.user_recent(MEMBER.user_id) == []
    assert core.emulator.snapshot()["received"].get("run", 0) == 0


async def test_quota_refusal_sends_nothing(core: Core) -> None:
    """A member over the active-job quota is refused without a /run."""
    service = core.service_with(RunSettings(limits=Limits(user_active=1)))
    await service.submit(RequestOptions(prompt="one"), MEMBER)
    with pytest.raises(QuotaExceededError):
        await service.submit(RequestOptions(prompt="two"), MEMBER)
    assert core.emulator.snapshot()["received"]["run"] == 1


async def test_refused_run_ends_the_job_as_failed_with_a_reason(core: Core) -> None:
    """When RunPod answers /run with an error, the job is FAILED with a reason a member can read."""
    core.emulator.script_faults("run", *[FaultKind.SERVER_ERROR] * 6)
    with pytest.raises(SubmitFailedError) as caught:
        await core.service.submit(RequestOptions(prompt="a fox"), MEMBER)
    job = caught.value.job
    assert job.final_state is JobState.FAILED
    assert "did not accept the job" in caught.value.reason
    assert await core.store.user_active(MEMBER.user_id) == []


async def test_reset_after_sending_run_is_never_resent(core: Core) -> None:
    """A connection reset after /run was sent ends as SUBMIT_UNKNOWN, with exactly one /run at RunPod."""
    core.emulator.script_faults("run", FaultKind.RESET)
    with pytest.raises(SubmitFailedError) as caught:
        await core.service.submit(RequestOptions(prompt="a fox"), MEMBER)
    assert caught.value.job.final_state is JobState.SUBMIT_UNKNOWN
    assert "not sent again" in caught.value.reason
    assert core.emulator.snapshot()["received"]["run"] == 1


async def test_failed_submit_is_done_only_once_its_outcome_is_shown(core: Core) -> None:
    """A reset /run leaves the job's outcome to be shown (still scheduled, so a poller shows it if the front end
    cannot); once the front end has shown it, the job is delivered and nothing is left scheduled."""
    core.emulator.script_faults("run", FaultKind.RESET)
    with pytest.raises(SubmitFailedError) as caught:
        await core.service.submit(RequestOptions(prompt="a fox"), MEMBER)
    jid = caught.value.job.jid
    pending = await core.store.get(jid)
    assert pending is not None
    assert pending.state is JobState.SUBMIT_UNKNOWN
    assert await core.store.scheduled_count(pending.endpoint_id) == 1
    await core.service.outcome_shown(caught.value)
    done = await core.store.get(jid)
    assert done is not None
    assert (done.state, done.final_state) == (JobState.DELIVERED, JobState.SUBMIT_UNKNOWN)
    assert await core.store.scheduled_count(pending.endpoint_id) == 0


async def test_member_cannot_cancel_someone_elses_job(core: Core) -> None:
    """Only the owner or a moderator may cancel."""
    submission = await core.service.submit(RequestOptions(prompt="a fox"), MEMBER)
    with pytest.raises(NotAllowedError):
        await core.service.cancel(submission.job.jid, Actor(user_id=999, guild_id=MEMBER.guild_id))


async def test_moderator_of_another_server_cannot_cancel(core: Core) -> None:
    """A moderator's override stops at their own server: nothing is recorded and nothing is sent to RunPod."""
    submission = await core.service.submit(RequestOptions(prompt="a fox"), MEMBER)
    with pytest.raises(NotAllowedError, match="another server"):
        await core.service.cancel(submission.job.jid, Actor(user_id=777, guild_id=9999, moderator=True))
    assert (await core.service.get(submission.job.jid)).cancel_requested_by is None
    assert core.emulator.snapshot()["received"].get("cancel") is None


async def test_cancel_of_a_job_runpod_no_longer_knows_is_reported_as_such(core: Core) -> None:
    """A 404 to /cancel is reported and recorded as GONE, not as a cancel sent."""
    core.emulator.update_scenario(workers=0)
    submission = await core.service.submit(RequestOptions(prompt="a fox"), MEMBER)
    core.emulator.reset()
    result = await core.service.cancel(submission.job.jid, Actor(user_id=MEMBER.user_id))
    assert result.runpod == CancelReport(CancelOutcome.GONE)
    assert CancelReport.of(result.job) == CancelReport(CancelOutcome.GONE)
    assert "RunPod no longer knows" in result.summary()


async def test_owner_cancel_reaches_runpod_once(core: Core) -> None:
    """The owner's cancel is sent to RunPod; a second cancel is a no-op."""
    core.emulator.update_scenario(workers=0)
    submission = await core.service.submit(RequestOptions(prompt="a fox"), MEMBER)
    first = await core.service.cancel(submission.job.jid, Actor(user_id=MEMBER.user_id))
    second = await core.service.cancel(submission.job.jid, Actor(user_id=MEMBER.user_id))
    assert first.first_request
    assert not second.first_request
    assert first.job.cancel_requested_by == MEMBER.user_id
    runpod_job = core.emulator.job(submission.job.runpod_id or "")
    assert runpod_job is not None
    assert runpod_job["status"] == "CANCELLED"
    assert core.emulator.snapshot()["received"]["cancel"] == 1


async def test_moderator_can_cancel_a_job_of_their_server(core: Core) -> None:
    """A moderator's cancel of a member's job in their server is accepted and recorded with the moderator's id."""
    submission = await core.service.submit(RequestOptions(prompt="a fox"), MEMBER)
    result = await core.service.cancel(submission.job.jid, Actor(user_id=777, guild_id=MEMBER.guild_id, moderator=True))
    assert result.job.cancel_requested_by == 777
