"""The poll policy: requests go where a result is likely."""

from __future__ import annotations

import random

import pytest

from jobs.policy import ExecutionTimes, PollPolicy, progress_window
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
    """12 of 30 steps after 4 s (step 13 not done) means between about 5.2 s and 6 s to go."""
    window = progress_window(4000, Progress(12, 30))
    assert window is not None
    assert window[1] == 6000
    assert window[0] == pytest.approx(4000 * 30 / 13 - 4000)


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
    assert NO_JITTER.running(elapsed_ms=100, typical_ms=60_000) == NO_JITTER.running_max_ms


def test_progress_far_from_done_is_polled_again_within_the_progress_cap() -> None:
    """A job 1% done after 1 s is not left alone for its whole estimated run, only up to `progress_max_ms`."""
    assert NO_JITTER.running(elapsed_ms=1000, progress=Progress(1, 100)) == NO_JITTER.progress_max_ms


def test_wide_progress_window_is_narrowed_before_the_job_can_finish() -> None:
    """One step of 30 after 1.3 s: the next poll comes before the earliest possible end (19.5 s), not after it."""
    window = progress_window(1300, Progress(1, 30))
    assert window is not None
    delay = NO_JITTER.running(elapsed_ms=1300, progress=Progress(1, 30))
    assert NO_JITTER.running_min_ms <= delay <= window[0]


def test_steady_job_is_caught_soon_after_it_ends_with_few_polls() -> None:
    """A steady 12 s run in 30 steps, first seen after 1.3 s, is caught within the precision in at most 3 polls."""
    run_ms, steps = 12_000.0, 30
    elapsed, polls = 1300.0, 1
    while elapsed < run_ms:
        done = int(elapsed * steps / run_ms)
        elapsed += NO_JITTER.running(elapsed_ms=elapsed, progress=Progress(done, steps))
        polls += 1
    assert polls <= 3
    assert elapsed - run_ms <= NO_JITTER.finish_precision_ms


def test_learned_shortest_run_delays_the_first_running_poll() -> None:
    """Without progress, a job is first polled one overdue interval after the endpoint's shortest usual run."""
    assert NO_JITTER.running(elapsed_ms=1000, earliest_ms=3000) == 2000 + NO_JITTER.overdue_ms


def test_job_past_the_shortest_run_is_polled_at_the_overdue_interval() -> None:
    """Once a job could be done, it is polled at the short overdue interval."""
    assert NO_JITTER.running(elapsed_ms=3500, earliest_ms=3000, typical_ms=9000) == NO_JITTER.overdue_ms


def test_queued_backoff_never_outlasts_the_shortest_run() -> None:
    """A queued job that starts right after a poll and runs briefly is still seen soon after it ends."""
    assert NO_JITTER.queued(9, earliest_finish_ms=3000) == 3000 + NO_JITTER.overdue_ms


def test_jobs_deep_in_the_queue_may_wait_longer() -> None:
    """A job expected to start in 10 s may be polled later than one at the head of the queue."""
    head = NO_JITTER.queued(9, earliest_finish_ms=3000, expected_wait_ms=0)
    deep = NO_JITTER.queued(9, earliest_finish_ms=3000, expected_wait_ms=10_000)
    assert deep > head
    assert deep <= NO_JITTER.queued_max_ms


def test_webhooks_turn_polling_into_a_slow_safety_net() -> None:
    """With webhooks, the first poll and the following ones come at the safety-net intervals."""
    policy = PollPolicy(jitter=0.0, webhooks=True)
    assert policy.first_poll() == policy.webhook_first_poll_ms
    assert policy.safety_net() == policy.webhook_poll_ms
    assert policy.webhook_first_poll_ms > policy.first_poll_ms


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


def test_shortest_runs_are_learned_from_recent_samples() -> None:
    """The earliest finish is a low quantile of recent runs, so one very short outlier does not set it."""
    times = ExecutionTimes()
    times.observe("a", 100)
    for run_ms in range(3000, 20_000, 100):
        times.observe("a", run_ms)
    earliest = times.earliest("a")
    assert earliest is not None
    assert 3000 <= earliest <= 4000


def test_samples_from_every_process_can_be_loaded() -> None:
    """Execution times read from Redis (newest first) teach a new poller before it has finished any job."""
    times = ExecutionTimes()
    times.load("a", list(range(20_000, 2_000, -1000)))
    assert times.earliest("a") == 3000
    assert times.typical("a") is not None
