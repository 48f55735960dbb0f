"""The retry policy: jittered backoff, Retry-After honoured but capped, and which failures may be retried."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from runpod_client import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    RunPodConnectionError,
    RunPodError,
    RunPodTimeoutError,
    ServerError,
)
from runpod_client.retries import parse_retry_after, should_retry


def test_backoff_is_full_jitter_under_a_growing_ceiling() -> None:
    """Retry n waits between 0 and base·2^(n-1), never over the maximum."""
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=3.0, rng=random.Random(1))
    for retry_number, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.delay(retry_number) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling * 0.8


def test_retry_after_is_used_as_given_up_to_the_cap() -> None:
    """A server's Retry-After replaces the backoff, but never beyond max_retry_after_s."""
    policy = RetryPolicy(max_retry_after_s=10)
    assert policy.delay(1, retry_after=3) == 3
    assert policy.delay(1, retry_after=3600) == 10


def test_policy_needs_at_least_one_attempt() -> None:
    """A policy without attempts is a mistake caught at once."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), (" 0 ", 0.0), ("-3", 0.0), ("1.5", 1.5)])
def test_retry_after_in_seconds(header: str, seconds: float) -> None:
    """Delta-seconds are read as seconds, never negative."""
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    """An HTTP date becomes the seconds left until it."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0


@pytest.mark.parametrize("header", [None, "", "soon", "nan"])
def test_unreadable_retry_after_is_none(header: str | None) -> None:
    """Anything unreadable is no hint at all."""
    assert parse_retry_after(header) is None


NOT_SENT = RunPodConnectionError("refused", maybe_sent=False)
MAYBE_SENT_RESET = RunPodConnectionError("reset", maybe_sent=True)
MAYBE_SENT_TIMEOUT = RunPodTimeoutError("timeout", maybe_sent=True)
CONNECT_TIMEOUT = RunPodTimeoutError("connect timeout", maybe_sent=False)


@pytest.mark.parametrize(
    ("error", "safe_operation", "paid_operation"),
    [
        (RateLimitedError(429, {}), True, True),
        (NOT_SENT, True, True),
        (CONNECT_TIMEOUT, True, True),
        (MAYBE_SENT_RESET, True, False),
        (MAYBE_SENT_TIMEOUT, True, False),
        (ServerError(500, {}), True, False),
        (ServerError(503, "busy"), True, False),
        (BadRequestError(400, {}), False, False),
        (AuthenticationError(401, {}), False, False),
        (NotFoundError(404, {}), False, False),
    ],
)
def test_which_failures_are_retried(error: RunPodError, safe_operation: bool, paid_operation: bool) -> None:
    """Safe operations retry transient failures; /run only when RunPod certainly did not take it."""
    assert should_retry(error, may_duplicate=False) is safe_operation
    assert should_retry(error, may_duplicate=True) is paid_operation
