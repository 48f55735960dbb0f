"""When to poll a job next: spend `/status` requests where a result is likely.

- The first poll comes a short delay after submit.
- Queued jobs back off (a job waiting for a GPU rarely changes state). Under RunPod's FIFO queue the oldest queued
  jobs start next, so they are polled at the short `next_in_line_ms`; the others back off, but never so far that a
  job which starts right after a poll and runs as briefly as the endpoint's shortest recent runs could finish long
  before the next one (a deeper place in the queue allows a longer wait).
- Running jobs are polled by an estimate of their finish time. Step progress ("12/30" after 4 s of running) bounds
  the total run time between 4 s * 30/13 and 4 s * 30/12: when that window is narrow the next poll comes just after
  its end; when it is wide, a poll comes before its start, late enough that the new reading narrows it. Without
  progress, the endpoint's execution times learned from finished jobs say when the job could first be done; from
  then on it is polled every `overdue_ms` (the first of those polls `overdue_ms` after that earliest end), so a
  result waits at most about `overdue_ms`.
- Every interval gets jitter, so jobs submitted together do not stay in lockstep; polls aimed at an estimated finish
  get at most `finish_jitter_ms` of it, so the jitter costs little lag.
- With webhooks (`webhooks=True`) RunPod announces every finish, so polling is only a slow safety net; not for a job
  sent with /runsync that outlived its wait (it carries no webhook, and its result is kept only a minute).

`Pace` applies the policy to one process's estimates: the endpoint's execution times (`ExecutionTimes`, shared
through Redis) and how fast its queue moves (`FinishRates`, what this process saw finish).
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field

from jobs.defaults import (
    DEFAULT_DELIVERY_LEASE_MS,
    DEFAULT_FIRST_POLL_MS,
    DEFAULT_JITTER,
    DEFAULT_QUEUED_MAX_MS,
    DEFAULT_QUEUED_MIN_MS,
    DEFAULT_RUNNING_MAX_MS,
    DEFAULT_RUNNING_MIN_MS,
)
from runpod_client.outputs import Progress
from storage.models import TrackedJob, to_ms

DEFAULT_EXECUTION_WINDOW = 200
# Fewer samples than this say little about an endpoint's shortest runs.
MIN_SAMPLES_FOR_QUANTILES = 10
# The run time below which only this share of recent runs finished: the earliest a job is worth polling.
EARLIEST_FINISH_QUANTILE = 0.03
# A job deeper in the queue waits for the jobs ahead; count only this share of that expected wait.
QUEUE_WAIT_TRUST = 0.5
# RunPod's ids of jobs sent with /runsync start with this. Their results are kept 1 minute instead of 30, so they are
# polled at the usual pace even with webhooks on (the one-minute safety net could miss them).
SYNC_ID_PREFIX = "sync-"
# The finish rate of an endpoint (how fast its queue moves) is measured over this window.
FINISH_RATE_WINDOW_S = 30.0
MIN_FINISHES_FOR_RATE = 5
# A first poll that would be put off by less than this is not worth a write.
MIN_DEFER_MS = 100


def is_sync_id(runpod_id: str | None) -> bool:
    """Whether RunPod's id is that of a /runsync job (whose result RunPod keeps only 1 minute)."""
    return runpod_id is not None and runpod_id.startswith(SYNC_ID_PREFIX)


@dataclass(frozen=True)
class PollPolicy:
    """Every number of the policy, in milliseconds; all are settings."""

    first_poll_ms: int = DEFAULT_FIRST_POLL_MS
    queued_min_ms: int = DEFAULT_QUEUED_MIN_MS
    queued_max_ms: int = DEFAULT_QUEUED_MAX_MS
    queued_factor: float = 1.6
    next_in_line_ms: int = 2_000
    running_min_ms: int = DEFAULT_RUNNING_MIN_MS
    running_max_ms: int = DEFAULT_RUNNING_MAX_MS
    # The interval once a job may be done: the lag-versus-requests knob (the lag is about half of it on average).
    overdue_ms: int = 1_300
    # A step-progress estimate narrower than this is trusted: the next poll comes at its end.
    finish_precision_ms: int = 1_000
    # The longest a poll is put off when progress says the job is far from done.
    progress_max_ms: int = 15_000
    delivery_lease_ms: int = DEFAULT_DELIVERY_LEASE_MS
    jitter: float = DEFAULT_JITTER
    finish_jitter_ms: int = 100
    # RunPod posts each finished job to its webhook: poll only as a safety net.
    webhooks: bool = False
    webhook_first_poll_ms: int = 60_000
    webhook_poll_ms: int = 60_000

    def first_poll(self, rng: random.Random | None = None, *, sync: bool = False) -> int:
        """The delay of a new job's first poll; a /runsync job (`sync`) sent no webhook and is polled as usual."""
        return self._jittered(self.webhook_first_poll_ms if self.webhooks and not sync else self.first_poll_ms, rng)

    def safety_net(self, rng: random.Random | None = None) -> int:
        """The next poll of a live job when webhooks announce its finish."""
        return self._jittered(self.webhook_poll_ms, rng)

    def queued(
        self,
        polls_while_queued: int,
        *,
        next_in_line: bool = False,
        rng: random.Random | None = None,
        earliest_finish_ms: float | None = None,
        expected_wait_ms: float | None = None,
    ) -> int:
        """Back off while the job waits for a worker.

        `earliest_finish_ms` is the endpoint's shortest usual run and `expected_wait_ms` how long until the job
        probably starts (from its place in the queue): together they bound how long a poll may be put off.
        """
        delay = self.queued_min_ms * self.queued_factor ** max(0, polls_while_queued)
        delay = min(delay, self.queued_max_ms)
        if earliest_finish_ms is not None:
            bound = earliest_finish_ms + self.overdue_ms + QUEUE_WAIT_TRUST * (expected_wait_ms or 0.0)
            delay = min(delay, max(bound, self.queued_min_ms))
        if next_in_line:
            delay = min(delay, self.next_in_line_ms)
        return self._jittered(delay, rng)

    def running(
        self,
        *,
        elapsed_ms: float,
        progress: Progress | None = None,
        typical_ms: float | None = None,
        earliest_ms: float | None = None,
        rng: random.Random | None = None,
    ) -> int:
        """The delay of the next poll of a job that has run `elapsed_ms` so far."""
        window = progress_window(elapsed_ms, progress)
        if window is not None:
            return self._from_progress(elapsed_ms, progress, window, rng)
        if earliest_ms is not None and elapsed_ms < earliest_ms:
            # Almost no run of this endpoint ends this early. A poll `overdue_ms` after the earliest end sees the
            # shortest runs as soon as the overdue polls that follow see the others.
            delay = earliest_ms + self.overdue_ms - elapsed_ms
        elif earliest_ms is None and typical_ms is not None and elapsed_ms < typical_ms:
            delay = typical_ms - elapsed_ms
        elif earliest_ms is None and typical_ms is None:
            delay = self.running_max_ms / 2
        else:
            delay = self.overdue_ms
        return self._jittered(min(max(delay, self.running_min_ms), self.running_max_ms), rng)

    def _from_progress(
        self, elapsed_ms: float, progress: Progress | None, window: tuple[float, float], rng: random.Random | None
    ) -> int:
        earliest, latest = window
        if latest - earliest <= self.finish_precision_ms or earliest <= self.running_min_ms:
            # Precise enough (or too close to tell apart): poll just after the latest plausible finish.
            delay = latest
        else:
            # A reading taken when the job has run `wanted` narrows the window to about half the precision (so it
            # is then trusted); it is taken before the earliest plausible finish, so it costs no lag.
            total = elapsed_ms + (earliest + latest) / 2
            units = progress.total if progress is not None else 1.0
            wanted = total * total / (units * self.finish_precision_ms / 2)
            delay = min(max(wanted - elapsed_ms, self.running_min_ms), earliest)
        delay = min(max(delay, self.running_min_ms), self.progress_max_ms)
        return self._jittered(delay, rng, cap_ms=self.finish_jitter_ms)

    def _jittered(self, delay: float, rng: random.Random | None, *, cap_ms: float | None = None) -> int:
        spread = delay * self.jitter
        if cap_ms is not None:
            spread = min(spread, cap_ms)
        return max(0, round(delay + (rng or random).uniform(-spread, spread)))


def progress_window(elapsed_ms: float, progress: Progress | None) -> tuple[float, float] | None:
    """How long a job reporting `progress` after `elapsed_ms` still runs: (earliest, latest) in ms, or None.

    A worker that reports `done` of `total` steps has finished step `done` but not step `done + 1`, so at a steady
    rate its whole run lasts between `elapsed * total / (done + 1)` and `elapsed * total / done`.
    """
    if progress is None or elapsed_ms <= 0 or progress.total <= 0 or progress.done <= 0:
        return None
    done = min(progress.done, progress.total)
    latest_total = elapsed_ms * progress.total / done
    earliest_total = elapsed_ms * progress.total / min(done + 1, progress.total) if done < progress.total else 0.0
    return max(0.0, earliest_total - elapsed_ms), max(0.0, latest_total - elapsed_ms)


@dataclass
class ExecutionTimes:
    """Execution times learned from an endpoint's finished jobs: a weighted mean and the recent samples."""

    weight: float = 0.2
    window: int = DEFAULT_EXECUTION_WINDOW
    _mean_ms: dict[str, float] = field(default_factory=dict)
    _samples: dict[str, deque[float]] = field(default_factory=dict)

    def observe(self, endpoint_id: str, execution_ms: float) -> None:
        if execution_ms <= 0:
            return
        previous = self._mean_ms.get(endpoint_id)
        self._mean_ms[endpoint_id] = (
            execution_ms if previous is None else previous + self.weight * (execution_ms - previous)
        )
        self._recent(endpoint_id).append(float(execution_ms))

    def load(self, endpoint_id: str, newest_first: list[int]) -> None:
        """Replace the samples with those every process recorded (newest first), keeping the mean's memory."""
        samples = [float(value) for value in reversed(newest_first[: self.window]) if value > 0]
        if not samples:
            return
        self._samples[endpoint_id] = deque(samples, maxlen=self.window)
        if endpoint_id not in self._mean_ms:
            self._mean_ms[endpoint_id] = sum(samples) / len(samples)

    def typical(self, endpoint_id: str) -> float | None:
        return self._mean_ms.get(endpoint_id)

    def quantile(self, endpoint_id: str, q: float) -> float | None:
        """The run time below which a share `q` of recent runs finished; None with too few samples."""
        samples = self._samples.get(endpoint_id)
        if not samples or len(samples) < MIN_SAMPLES_FOR_QUANTILES:
            return None
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, max(0, math.floor(q * len(ordered))))]

    def earliest(self, endpoint_id: str) -> float | None:
        """About the shortest recent run of the endpoint (a low quantile, so one outlier does not count)."""
        return self.quantile(endpoint_id, EARLIEST_FINISH_QUANTILE)

    def _recent(self, endpoint_id: str) -> deque[float]:
        recent = self._samples.get(endpoint_id)
        if recent is None:
            recent = self._samples[endpoint_id] = deque(maxlen=self.window)
        return recent


class FinishRates:
    """How fast each endpoint's queue moves: the jobs of it this process saw finish per second lately."""

    def __init__(self, window_s: float = FINISH_RATE_WINDOW_S, min_finishes: int = MIN_FINISHES_FOR_RATE) -> None:
        self.window_s = window_s
        self.min_finishes = min_finishes
        self._finishes: dict[str, deque[float]] = {}

    def observe(self, endpoint_id: str) -> None:
        """A job of the endpoint finished now."""
        self._finishes.setdefault(endpoint_id, deque()).append(time.monotonic())

    def per_second(self, endpoint_id: str) -> float | None:
        """Finishes per second over the window; None with too few to tell."""
        finishes = self._finishes.get(endpoint_id)
        if not finishes:
            return None
        now = time.monotonic()
        while finishes and finishes[0] < now - self.window_s:
            finishes.popleft()
        if len(finishes) < self.min_finishes:
            return None
        return len(finishes) / max(now - finishes[0], 1.0)

    def next_in_line(self, endpoint_id: str, queue_rank: int | None, within_ms: float) -> bool:
        """Whether a job at `queue_rank` is among those expected to start within `within_ms`."""
        if queue_rank is None:
            return False
        rate = self.per_second(endpoint_id)
        in_line = max(1.0, (rate or 0.0) * within_ms / 1000)
        return queue_rank < in_line

    def expected_wait_ms(self, endpoint_id: str, queue_rank: int | None) -> float | None:
        """How long until a job at `queue_rank` probably starts: the jobs ahead of it, at the rate jobs finish."""
        rate = self.per_second(endpoint_id)
        if queue_rank is None or not rate:
            return None
        return queue_rank / rate * 1000


class Pace:
    """When to poll a job next: the policy applied to what this process learned about the job's endpoint."""

    def __init__(
        self, policy: PollPolicy, executions: ExecutionTimes, rng: random.Random, rates: FinishRates | None = None
    ) -> None:
        self.policy = policy
        self.executions = executions
        self.rng = rng
        self.rates = rates or FinishRates()

    def webhooked(self, job: TrackedJob) -> bool:
        """Whether RunPod announces the job's finish (polling is then only a safety net)."""
        return self.policy.webhooks and not is_sync_id(job.runpod_id)

    def finished(self, endpoint_id: str, execution_ms: int | None) -> None:
        """A job of the endpoint completed (after running `execution_ms`)."""
        if execution_ms:
            self.executions.observe(endpoint_id, execution_ms)
        self.rates.observe(endpoint_id)

    def next_poll_ms(
        self,
        job: TrackedJob,
        *,
        running: bool,
        elapsed_ms: float,
        progress: Progress | None,
        queue_rank: int | None,
    ) -> int:
        """The delay of a live job's next poll."""
        endpoint_id = job.endpoint_id
        if self.webhooked(job):
            return self.policy.safety_net(self.rng)
        if running:
            return self.policy.running(
                elapsed_ms=elapsed_ms,
                progress=progress,
                typical_ms=self.executions.typical(endpoint_id),
                earliest_ms=self.executions.earliest(endpoint_id),
                rng=self.rng,
            )
        return self.policy.queued(
            job.poll_count,
            next_in_line=self.rates.next_in_line(endpoint_id, queue_rank, self.policy.next_in_line_ms),
            earliest_finish_ms=self.executions.earliest(endpoint_id),
            expected_wait_ms=self.rates.expected_wait_ms(endpoint_id, queue_rank),
            rng=self.rng,
        )

    def first_poll_deferral_ms(self, job: TrackedJob, now_ms: float) -> int | None:
        """How much later to poll a job never polled yet: it cannot be done before the endpoint's shortest usual run
        has passed since its submit, so its first poll comes `overdue_ms` after that (as for a running job), at most
        `running_max_ms` after the submit. None: poll now."""
        if self.webhooked(job) or job.poll_count > 0 or job.cancel_requested_by is not None:
            return None
        earliest = self.executions.earliest(job.endpoint_id)
        if earliest is None or job.submitted_at is None:
            return None
        due = to_ms(job.submitted_at) + min(earliest + self.policy.overdue_ms, self.policy.running_max_ms)
        wait = round(due - now_ms)
        return wait if wait >= MIN_DEFER_MS else None
