"""When to poll a job next: spend `/status` requests where a result is likely.

- The first poll comes a short delay after submit.
- Queued jobs back off (a job waiting for a GPU rarely changes state); the oldest queued job of an endpoint is
  the next to start under RunPod's FIFO queue, so the poller may pass `next_in_line` to poll it more often.
- Running jobs are polled by an estimate of their finish time: from the worker's step progress when it reports
  any ("12/30" after 4 s means about 6 s to go), otherwise from the execution times learned from finished jobs;
  past the estimate, they are polled at a short steady interval.
- Every interval gets jitter, so jobs submitted together do not stay in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from runpod_client.outputs import Progress


@dataclass(frozen=True)
class PollPolicy:
    """Every number of the policy, in milliseconds; all are settings."""

    first_poll_ms: int = 2_000
    queued_min_ms: int = 2_000
    queued_max_ms: int = 15_000
    queued_factor: float = 1.6
    next_in_line_ms: int = 2_000
    running_min_ms: int = 500
    running_max_ms: int = 5_000
    overdue_ms: int = 1_000
    delivery_lease_ms: int = 60_000
    jitter: float = 0.1

    def first_poll(self, rng: random.Random | None = None) -> int:
        return self._jittered(self.first_poll_ms, rng)

    def queued(self, polls_while_queued: int, *, next_in_line: bool = False, rng: random.Random | None = None) -> int:
        """Back off while the job waits for a worker."""
        delay = self.queued_min_ms * self.queued_factor ** max(0, polls_while_queued)
        delay = min(delay, self.queued_max_ms)
        if next_in_line:
            delay = min(delay, self.next_in_line_ms)
        return self._jittered(delay, rng)

    def running(
        self,
        *,
        elapsed_ms: float,
        progress: Progress | None = None,
        typical_ms: float | None = None,
        rng: random.Random | None = None,
    ) -> int:
        """Poll near the estimated finish; past it, at the short overdue interval."""
        remaining = estimate_remaining_ms(elapsed_ms, progress, typical_ms)
        if remaining is None:
            delay = self.running_max_ms / 2
        elif remaining <= 0:
            delay = self.overdue_ms
        else:
            delay = remaining
        return self._jittered(min(max(delay, self.running_min_ms), self.running_max_ms), rng)

    def _jittered(self, delay: float, rng: random.Random | None) -> int:
        spread = delay * self.jitter
        return max(0, round(delay + (rng or random).uniform(-spread, spread)))


def estimate_remaining_ms(elapsed_ms: float, progress: Progress | None, typical_ms: float | None) -> float | None:
    """How long the job probably still runs, or None when nothing is known."""
    if progress is not None and progress.fraction is not None and progress.fraction > 0 and elapsed_ms > 0:
        fraction = min(progress.fraction, 1.0)
        return elapsed_ms / fraction - elapsed_ms
    if typical_ms is not None:
        return typical_ms - elapsed_ms
    return None


@dataclass
class ExecutionTimes:
    """Execution times learned from an endpoint's finished jobs (an exponentially weighted mean)."""

    weight: float = 0.2
    _mean_ms: dict[str, float] = field(default_factory=dict)

    def observe(self, endpoint_id: str, execution_ms: float) -> None:
        if execution_ms <= 0:
            return
        previous = self._mean_ms.get(endpoint_id)
        self._mean_ms[endpoint_id] = (
            execution_ms if previous is None else previous + self.weight * (execution_ms - previous)
        )

    def typical(self, endpoint_id: str) -> float | None:
        return self._mean_ms.get(endpoint_id)
