"""Retry policy: exponential backoff with full jitter, `Retry-After` honoured but capped, no duplicate /run."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from runpod_client.errors import RateLimitedError, RunPodError, RunPodTransportError, ServerError

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BASE_DELAY_S = 0.5
DEFAULT_MAX_DELAY_S = 8.0
# A server asking for a longer pause than this gets this: the caller's own deadline matters more.
DEFAULT_MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts. `max_attempts` counts the first one."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay_s: float = DEFAULT_BASE_DELAY_S
    max_delay_s: float = DEFAULT_MAX_DELAY_S
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay_s, self.max_delay_s, self.max_retry_after_s) < 0:
            raise ValueError("retry delays cannot be negative")

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        # Full jitter: many clients that failed together do not come back together.
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** max(retry_number - 1, 0))
        return self.rng.uniform(0.0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


def should_retry(error: RunPodError, *, may_duplicate: bool) -> bool:
    """Whether an attempt that failed with `error` may be made again.

    `may_duplicate` is True for operations that start paid work (/run, /runsync): they are retried only when
    RunPod certainly did not take the request (a 429, or a connection that never opened).
    """
    if isinstance(error, RateLimitedError):
        return True
    if isinstance(error, RunPodTransportError):
        return not (may_duplicate and error.maybe_sent)
    if isinstance(error, ServerError):
        return not may_duplicate
    return False


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
