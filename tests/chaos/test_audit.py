"""The chaos audit itself: it must flag what it exists to catch (a checker that cannot fail proves nothing)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from storage.models import JobState, TrackedJob
from tests.chaos.audit import RunPodJob, Submission, audit
from tests.fakes.discord.views import InteractionView, MessageView

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SUBMISSION = Submission(index=0, interaction_id=111, user_id=5, channel_id=7, seed=100_000, prompt="a cat")


def record(state: JobState, outcome: JobState | None = None) -> TrackedJob:
    return TrackedJob(
        jid="abc123abc123abcd",
        state=state,
        outcome=outcome,
        endpoint_id="e",
        model="default",
        user_id=5,
        channel_id=7,
        request_id="111",
        runpod_id="rp-1",
        created_at=NOW,
        updated_at=NOW,
    )


def message(title: str, *, files: int = 0, fields: tuple[str, ...] = ()) -> MessageView:
    """The parts of a message the audit reads: the embed (title, fields, footer), attachments, deleted, history."""
    embed: dict[str, Any] = {
        "title": title,
        "footer": {"text": "job abc123abc123abcd"},
        "fields": [{"name": name, "value": "x"} for name in fields],
    }
    attachment = {"id": 1, "filename": "a.png", "size": 1, "url": "", "proxy_url": ""}
    view = {"id": 1, "channel_id": 7, "embeds": [embed], "attachments": [attachment] * files, "deleted": False}
    return cast(MessageView, {**view, "history": []})


def interaction(answer: str) -> InteractionView:
    """An acknowledged interaction whose original response says `answer`."""
    view = {"id": 111, "response": {"type": 5, "ephemeral": True, "data": {}, "at": ""}, "followups": []}
    return cast(InteractionView, {**view, "original_message": {"content": answer}})


def run(records: list[TrackedJob], messages: list[MessageView], answer: str, runpod: list[RunPodJob]) -> list[str]:
    report, _verdicts = audit(
        [SUBMISSION],
        {111: interaction(answer)},
        messages,
        records,
        runpod,
        {"totals": {"submitted": len(runpod)}},
        kills=0,
        redis_restarts=0,
        run_resets=0,
        crashes=0,
        cut_short=set(),
        settled=True,
        seed=1,
    )
    return report.problems


def test_a_job_delivered_once_passes() -> None:
    """One result, one card showing Done, one RunPod job: no problem."""
    done = record(JobState.DELIVERED, JobState.COMPLETED)
    messages = [message("Done"), message("", files=1)]
    assert run([done], messages, "Submitted: job", [RunPodJob("rp-1", "COMPLETED", 100_000)]) == []


def test_two_result_messages_are_a_duplicate() -> None:
    """A job with two result messages fails the audit."""
    done = record(JobState.DELIVERED, JobState.COMPLETED)
    messages = [message("Done"), message("", files=1), message("", files=1)]
    problems = run([done], messages, "Submitted: job", [RunPodJob("rp-1", "COMPLETED", 100_000)])
    assert any("more than one result" in problem for problem in problems)


def test_completed_job_without_its_result_is_lost_whatever_the_answer() -> None:
    """Images that never reached the channel are lost even if the member got an error message."""
    done = record(JobState.DELIVERED, JobState.COMPLETED)
    problems = run([done], [message("Done")], "Something went wrong", [RunPodJob("rp-1", "COMPLETED", 100_000)])
    assert any("lost" in problem for problem in problems)


def test_second_runpod_job_for_one_submission_is_a_paid_duplicate() -> None:
    """Two RunPod jobs carrying one submission's seed fail the audit."""
    done = record(JobState.DELIVERED, JobState.COMPLETED)
    runpod = [RunPodJob("rp-1", "COMPLETED", 100_000), RunPodJob("rp-2", "COMPLETED", 100_000)]
    problems = run([done], [message("Done"), message("", files=1)], "Submitted: job", runpod)
    assert any("paid for more than once" in problem for problem in problems)


def test_outcome_unknown_with_no_kill_to_explain_it_fails() -> None:
    """An "Outcome unknown" job that no kill cut short and no reset /run explains fails the audit."""
    unknown = record(JobState.DELIVERED, JobState.SUBMIT_UNKNOWN)
    card = message("Outcome unknown", fields=("Reason",))
    problems = run([unknown], [card], "Submitted: job", [RunPodJob("rp-1", "COMPLETED", 100_000)])
    assert any("no kill or /run reset" in problem for problem in problems)
