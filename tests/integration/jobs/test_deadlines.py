"""Every tracked job ends: /status errors have a bounded life, a queue wait has a limit, and no job stays live past
its RunPod ttl; the ttl the bot sends leaves a finished result RunPod's whole retention."""

from __future__ import annotations

import time
from dataclasses import replace

import aiohttp
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from jobs.poller import PollerSettings
from jobs.presets import RequestOptions
from jobs.service import RunSettings
from runpod_bot.core import build_core
from runpod_bot.settings import Settings
from runpod_emulator import Emulator
from storage.models import JobState, Requester
from storage.store import Limits
from tests.integration.jobs.conftest import FAST_POLLER, Core, RecordingNotifier, polling, wait_until

MEMBER = Requester(user_id=7, guild_id=2, channel_id=3)
# Every kind of /status error gives up after 0.4 s (and at least 3 attempts in a row), retried every 50 ms.
SHORT_LIVES = replace(
    FAST_POLLER,
    error_retry_ms=50,
    auth_error_retry_ms=50,
    refused_error_life_ms=400,
    auth_error_life_ms=400,
    outage_error_life_ms=400,
    deadline_margin_ms=200,
)
RUNPOD_RETENTION_MS = 30 * 60 * 1000
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000


async def submit_one(core: Core, run_settings: RunSettings, prompt: str = "a lighthouse") -> str:
    service = core.service_with(replace(run_settings, limits=Limits(user_active=1)))
    submission = await service.submit(RequestOptions(prompt=prompt), MEMBER)
    return submission.job.jid


async def finished(core: Core, notifier: RecordingNotifier, jid: str, settings: PollerSettings) -> float:
    """Run a poller until the job is handed over; returns how long that took."""
    started = time.monotonic()
    async with polling(core.poller(notifier, settings)):
        await wait_until(lambda: jid in notifier.finished, timeout_s=10)
    return time.monotonic() - started


async def test_status_answering_400_for_ever_ends_the_job_failed_and_frees_the_slot(core: Core) -> None:
    """A job whose /status keeps answering 400 ends FAILED with a readable reason; it is cancelled at RunPod and its
    member may submit again."""
    core.emulator.update_scenario(faults={"status": {"bad_request": 1.0}})
    jid = await submit_one(core, RunSettings(), "[emulator:hang] a lighthouse")
    notifier = RecordingNotifier()
    await finished(core, notifier, jid, SHORT_LIVES)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.FAILED
    assert result.reason is not None
    assert "400 Bad Request" in result.reason
    assert "status" in result.reason
    assert "cancel" in result.reason
    job = await core.store.get(jid)
    assert job is not None
    assert job.runpod_id is not None
    assert job.final_state is JobState.FAILED
    assert core.emulator.counters.request_count("cancel", 200) == 1
    assert (core.emulator.job(job.runpod_id) or {}).get("status") == "CANCELLED"
    assert await core.store.user_active(MEMBER.user_id) == []
    await submit_one(core, RunSettings(), "another lighthouse")


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("server_error", "500 Internal Server Error"),
        ("rate_limited", "rate limit"),
        ("reset", "could not be reached"),
        ("forbidden", "API key"),
        ("garbled", "could not be read"),
    ],
)
async def test_every_kind_of_status_error_has_a_bounded_life(core: Core, fault: str, said: str) -> None:
    """5xx, 429, broken connections, 401/403 and unreadable replies all end the job FAILED, saying which it was."""
    core.emulator.update_scenario(faults={"status": {fault: 1.0}})
    jid = await submit_one(core, RunSettings())
    notifier = RecordingNotifier()
    await finished(core, notifier, jid, SHORT_LIVES)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.FAILED
    assert result.reason is not None
    assert said in result.reason, result.reason


async def test_status_errors_broken_by_a_good_answer_do_not_add_up(core: Core) -> None:
    """A 400 now and then, each followed by a good answer, never ends the job: it completes."""
    core.emulator.update_scenario(execution_s=1.5)
    core.emulator.script_faults("status", *["bad_request", "none"] * 40)
    # Without progress the running job is polled every ~100 ms: its 400s span far more than their 0.4 s life.
    jid = await submit_one(core, RunSettings(), "[emulator:no-progress] a lighthouse")
    notifier = RecordingNotifier()
    await finished(core, notifier, jid, SHORT_LIVES)
    assert notifier.outcome(jid) is JobState.COMPLETED
    assert core.emulator.counters.request_count("status", 400) >= 3


async def test_job_no_worker_starts_within_the_queue_wait_limit_is_cancelled(core: Core) -> None:
    """A job still IN_QUEUE when its queue wait limit passes ends FAILED, saying so, and is cancelled at RunPod."""
    core.emulator.update_scenario(workers=0)
    jid = await submit_one(core, RunSettings(max_queue_wait_ms=500))
    notifier = RecordingNotifier()
    took = await finished(core, notifier, jid, SHORT_LIVES)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.FAILED
    assert result.reason is not None
    assert "No GPU worker started this job" in result.reason, result.reason
    assert took >= 0.4
    job = await core.store.get(jid)
    assert job is not None
    assert job.runpod_id is not None
    assert (core.emulator.job(job.runpod_id) or {}).get("status") == "CANCELLED"
    assert await core.store.user_active(MEMBER.user_id) == []


@pytest.mark.parametrize("runpod_says", ["IN_QUEUE", "IN_PROGRESS"])
async def test_job_runpod_keeps_live_past_its_ttl_ends_at_ttl_plus_margin(core: Core, runpod_says: str) -> None:
    """Whatever RunPod answers, a job live longer than its ttl plus the margin ends FAILED, saying why."""
    # A RunPod that does not delete jobs at their ttl; the job waits for a worker, or runs, for ever.
    core.emulator.update_scenario(enforce_ttl=False, workers=0 if runpod_says == "IN_QUEUE" else 4)
    prompt = "a lighthouse" if runpod_says == "IN_QUEUE" else "[emulator:hang] a lighthouse"
    # A queue wait longer than the ttl only an explicit ttl allows: the deadline is reached first.
    run_settings = RunSettings(ttl_ms=600, max_queue_wait_ms=60_000, execution_timeout_ms=60_000)
    jid = await submit_one(core, run_settings, prompt)
    notifier = RecordingNotifier()
    took = await finished(core, notifier, jid, SHORT_LIVES)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.FAILED
    assert result.reason is not None
    assert "time limit" in result.reason, result.reason
    assert took >= 0.7
    job = await core.store.get(jid)
    assert job is not None
    assert job.runpod_id is not None
    assert (core.emulator.job(job.runpod_id) or {}).get("status") == "CANCELLED"


async def test_expired_job_reason_says_runpod_deletes_jobs_at_their_ttl_too(core: Core) -> None:
    """A job RunPod forgot is EXPIRED with a reason naming both rules: 30 minutes after finishing, and the ttl."""
    jid = await submit_one(core, RunSettings(ttl_ms=300), "[emulator:hang] a lighthouse")
    notifier = RecordingNotifier()
    await finished(core, notifier, jid, SHORT_LIVES)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.EXPIRED
    assert result.reason is not None
    assert "30 minutes after it finishes" in result.reason
    assert "time limit" in result.reason


async def test_run_policy_ttl_keeps_a_result_for_runpods_whole_retention(
    redis: aioredis.Redis, emulator: Emulator
) -> None:
    """The bot's /run carries a ttl covering its queue wait limit, the execution timeout and RunPod's 30-minute
    retention, within RunPod's 7 days."""
    settings = Settings(
        discord_token=SecretStr("ZmFrZS1kaXNjb3JkLWJvdA.RkFLRQ.unused-here-the-fake-discord-token-is-used"),
        runpod_api_key=SecretStr(emulator.api_key),
        runpod_endpoint_id=emulator.endpoint_id,
        runpod_base_url=emulator.base_url,
        models_file="/nonexistent/models.toml",
        execution_timeout_s=3000,
        max_queue_wait_s=900,
    )
    async with aiohttp.ClientSession() as http:
        core = build_core(settings, redis, http)
        submission = await core.service.submit(RequestOptions(prompt="a lighthouse"), MEMBER)
    assert submission.job.runpod_id is not None
    policy = emulator.received_policy(submission.job.runpod_id)
    assert policy is not None
    assert policy["executionTimeout"] == 3000 * 1000
    assert policy["ttl"] >= (900 + 3000) * 1000 + RUNPOD_RETENTION_MS
    assert policy["ttl"] <= SEVEN_DAYS_MS
