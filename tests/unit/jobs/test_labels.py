"""One vocabulary for a job's state: what Discord cards and the command line call it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobs.labels import state_label
from runpod_bot.console import describe_state
from storage.models import JobState, TrackedJob


def finished(outcome: JobState, **extra: Any) -> TrackedJob:
    now = datetime.now(UTC)
    return TrackedJob(
        jid="abcdef0123456789",
        state=JobState.DELIVERED,
        outcome=outcome,
        endpoint_id="ep",
        model="default",
        user_id=1,
        created_at=now,
        updated_at=now,
        extra=extra,
    )


def test_a_delivered_job_is_done() -> None:
    """A job whose images were posted is "Done" on its card and "done" on the command line."""
    job = finished(JobState.COMPLETED)
    assert state_label(job) == "Done"
    assert describe_state(job) == "done"


def test_a_result_discord_refused_is_not_delivered_anywhere() -> None:
    """A completed job whose result was refused reads "Not delivered", with the reason, on the command line too."""
    job = finished(JobState.COMPLETED, delivery_failed="Discord refused the result (HTTP 400)")
    assert state_label(job) == "Not delivered"
    assert describe_state(job) == "not delivered: Discord refused the result (HTTP 400)"


def test_an_unknown_outcome_reads_the_same_on_both_sides() -> None:
    """A /run whose outcome is unknown is "Outcome unknown" on the card and on the command line."""
    job = finished(JobState.SUBMIT_UNKNOWN)
    assert state_label(job) == "Outcome unknown"
    assert describe_state(job).startswith("outcome unknown")
