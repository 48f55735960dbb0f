"""The poll policy: requests go where a result is likely."""

from __future__ import annotations

import random

from jobs.policy import ExecutionTimes, PollPolicy, estimate_remaining_ms
from runpod_client.outputs import Progress

NO_JITTER = PollPolicy(jitter=0.0)


def test_queued_jobs_back_off_up_to_the_maximum() -> None:
    """Each poll of a queued job waits longer, never past the maximum."""
    delays = [NO_JITTER.queued(polls) for polls in range(10)]
    assert delays == sorted(delays)
    assert delays[0] == NO_JITTER.queued_min_ms
    assert delays[-1] == NO_JITTER.queued_max_ms


def test_next_in_line_is_polled_often() -> None:
    """The oldest queued job (the next to start) is polled at the short interval even after backing off."""
    assert NO_JITTER.queued(9, next_in_line=True) == NO_JITTER.next_in_line_ms


def test_step_progress_predicts_the_finish() -> None:
    """12 of 30 steps after 4 s means about 6 s to go."""
    assert estimate_remaining_ms(4000, Progress(12, 30), None) == 6000


def test_running_job_is_polled_near_its_estimated_finish() -> None:
    """A job 2/3 done after 2 s is polled about 1 s later."""
    assert NO_JITTER.running(elapsed_ms=2000, progress=Progress(20, 30)) == 1000


def test_learned_execution_time_is_used_without_progress() -> None:
    """Without progress, a job is polled when the endpoint's typical run would end."""
    assert NO_JITTER.running(elapsed_ms=1000, typical_ms=3500) == 2500


def test_overdue_job_is_polled_at_the_short_interval() -> None:
    """Past its estimate, a job is polled at the overdue interval."""
    assert NO_JITTER.running(elapsed_ms=9000, typical_ms=3000) == NO_JITTER.overdue_ms


def test_running_delay_stays_within_bounds() -> None:
    """Long estimates are capped so a stuck estimate never hides a finished job for long."""
    assert NO_JITTER.running(elapsed_ms=100, progress=Progress(1, 100)) == NO_JITTER.running_max_ms


def test_jitter_spreads_jobs_submitted_together() -> None:
    """Delays vary within the jitter fraction around the nominal value."""
    policy = PollPolicy(jitter=0.1)
    rng = random.Random(1)
    delays = {policy.first_poll(rng) for _ in range(50)}
    assert len(delays) > 10
    assert all(1800 <= delay <= 2200 for delay in delays)


def test_execution_times_follow_recent_jobs() -> None:
    """The learned execution time moves toward new observations, per endpoint."""
    times = ExecutionTimes(weight=0.5)
    times.observe("a", 10_000)
    times.observe("a", 20_000)
    assert times.typical("a") == 15_000
    assert times.typical("b") is None
