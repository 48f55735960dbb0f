"""The crash-and-fault suite in small, in `make test`: the same processes, faults and audit as `make chaos`.

Twenty jobs with RunPod faults on, one Redis restart, one `/run` reset after RunPod took the job, a topology change
from gateway + poller to all + poller, and one SIGKILL of the poller while Discord holds back its reply to a result
upload (the images are posted, the bot has not heard); members press Cancel on a few cards. The owners of five
results press a button on them as they appear (V<n>, U<n> with the upscaler, V<n> again, Remix through its form,
Re-roll), and each press is audited as a submission of its own. Short leases (3 s to poll, 4 s to deliver)
bring the killed process's jobs back within seconds; the kill spares the gateway, because a submit cut short only
ends when its fixed two-minute submit lease does.

Discord enforces its real rate limits and fails too: op 7 and op 9 (a new session, after discord.py's 5 s pause)
each amid a burst of four `/imagine` in one channel, two 5xx and two 429s on message posts and card edits, and one
command that reaches the bot after Discord's 3 s deadline (its acknowledgement refused, so it must start nothing).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from tests.chaos.run import SPLIT_TOPOLOGIES, ChaosOptions, run_chaos

SMOKE = ChaosOptions(
    jobs=20,
    kills=1,
    redis_restarts=1,
    run_resets=1,
    seed=20,
    faults=True,
    members=3,
    channels=4,
    cancel_share=0.15,
    press_share=0.25,
    submit_rate=2.0,
    topologies=SPLIT_TOPOLOGIES,
    kill_modes=("delivery",),
    early_kills=True,
    poll_lease_ms=3_000,
    delivery_lease_ms=4_000,
    settle_timeout_s=60,
    reconnects=1,
    invalid_sessions=1,
    discord_5xx=2,
    discord_429=2,
    late_callbacks=1,
    burst=4,
)
# Far above the usual 20-30 s: only a hang would reach it.
SMOKE_TIMEOUT_S = 180


# Its leases are 3-4 s and its processes many: alone, after the parallel tests, a loaded CPU does not stretch them.
@pytest.mark.serial
async def test_jobs_through_a_kill_a_redis_restart_and_faults_are_all_accounted_for(tmp_path: Path) -> None:
    """Every submission ends delivered once or explained, and RunPod ran each at most once."""
    async with asyncio.timeout(SMOKE_TIMEOUT_S):
        report, _verdicts, _logs = await run_chaos(replace(SMOKE, log_dir=tmp_path / "logs"))
    assert report.problems == [], "\n".join(report.problems)
    assert report.kills == 1
    # A REDIS_URL given to the suite (CI's own server) is used as it is, never restarted.
    assert report.redis_restarts == (0 if os.environ.get("REDIS_URL") else 1)
    assert report.delivered + report.explained + report.refused + report.unanswered == report.jobs
    assert report.delivered >= report.jobs // 2
    assert report.run_calls == report.jobs - report.never_reached_runpod
    # Members press Cancel on a few cards while their job is queued or running.
    assert report.cancel_clicks >= 1
    # Five presses are planned; a press whose result never came (its job failed under the faults) is not sent.
    pressed = report.presses_delivered + report.presses_explained + report.presses_refused + report.presses_unanswered
    assert pressed == report.presses >= 3, report.press_actions
    assert report.presses_delivered >= 2
    assert (report.wrong_parents, report.wrong_sources) == (0, 0)
    # The audit compared the GPU time counted with what RunPod reported for each job that ran (any mismatch is one of
    # `problems`); most jobs ran.
    assert report.gpu_jobs_counted == report.gpu_jobs >= report.delivered
    # Discord's failures, each met at least once; a late command starts no job (it has no acknowledgement).
    assert (report.gateway_reconnects, report.gateway_invalid_sessions) == (1, 1)
    assert (report.discord_5xx, report.discord_429) == (2, 2)
    assert report.late_callbacks >= 1
    assert report.late_jobs == 0
