"""Who may act on a job: its owner, a moderator of its server, the operator; a private job is its owner's alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.access import Action, Actor, may, refusal
from storage.models import JobState, TrackedJob

OWNER, OTHER = 1, 2
HERE, THERE = 100, 200


def job(guild_id: int | None = HERE, **extra: Any) -> TrackedJob:
    now = datetime.now(UTC)
    return TrackedJob(
        jid="abcdef0123456789",
        state=JobState.QUEUED,
        endpoint_id="ep",
        model="default",
        user_id=OWNER,
        guild_id=guild_id,
        created_at=now,
        updated_at=now,
        extra=extra,
    )


@pytest.mark.parametrize(
    ("actor", "allowed"),
    [
        (Actor(OWNER), True),
        (Actor(OWNER, guild_id=THERE), True),
        (Actor(OTHER, guild_id=HERE), False),
        (Actor(OTHER, guild_id=HERE, moderator=True), True),
        (Actor(OTHER, guild_id=THERE, moderator=True), False),
        (Actor(OTHER, guild_id=None, moderator=True), False),
        (Actor(OTHER, guild_id=THERE, operator=True), True),
        (Actor(OTHER, operator=True), True),
    ],
)
def test_a_servers_job_is_its_owners_its_moderators_and_the_operators(actor: Actor, allowed: bool) -> None:
    """The moderator override holds only in the job's own server; the operator's holds everywhere."""
    assert may(actor, job()) is allowed


@pytest.mark.parametrize("private_job", [job(private=True), job(guild_id=None)])
def test_a_private_or_dm_job_is_its_owners_alone(private_job: TrackedJob) -> None:
    """A moderator of the server it was typed in is refused, and told it is private; the operator is not."""
    moderator = Actor(OTHER, guild_id=HERE, moderator=True)
    assert not may(moderator, private_job)
    assert "is private: only the member who started it can cancel it" in refusal(moderator, private_job, Action.CANCEL)
    assert may(Actor(OTHER, operator=True), private_job)
    assert may(Actor(OWNER), private_job)


def test_refusal_to_another_servers_moderator_says_why() -> None:
    """The refusal names who may act and that a moderator's override stops at their own server."""
    text = refusal(Actor(OTHER, guild_id=THERE, moderator=True), job(), Action.RETRY)
    assert "or a moderator of its server can retry it" in text
    assert "another server" in text
