"""The chaos audit itself: it must flag what it exists to catch (a checker that cannot fail proves nothing)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from PIL import Image

from jobs.lineage import Derivation, Parent
from runpod_emulator.images import enlarge_png, render_png
from storage.models import JobState, TrackedJob
from tests.chaos.audit import ChaosReport, GpuUsage, RunPodJob, Submission, audit, drawn_from
from tests.fakes.discord.views import InteractionView, MessageView

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SUBMISSION = Submission(index=0, interaction_id=111, user_id=5, channel_id=7, seed=100_000, prompt="a cat")
JID = "abc123abc123abcd"
# U2 pressed on SUBMISSION's result: a submission of its own, whose job the bot records as `PRESS_JID`.
UPSCALE = Submission(
    index=1, interaction_id=222, user_id=5, channel_id=7, seed=None, prompt="a cat", action="upscale", parent=0, image=2
)
PRESS_JID = "def456def456def4"
IMAGE_TWO = "https://cdn.example/attachments/7/9/image-2.png"


def record(state: JobState, outcome: JobState | None = None) -> TrackedJob:
    return TrackedJob(
        jid=JID,
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


def upscale_record(parent: Parent, runpod_id: str | None = None) -> TrackedJob:
    """The job U2 made, delivered: its request keeps the parent's seed and the link of image 2."""
    return TrackedJob(
        jid=PRESS_JID,
        state=JobState.DELIVERED,
        outcome=JobState.COMPLETED,
        endpoint_id="e",
        model="esrgan-2x",
        user_id=5,
        channel_id=7,
        request_id="222",
        runpod_id=runpod_id,
        request={"prompt": "a cat", "seed": 100_000, "source_image_url": IMAGE_TWO},
        extra=parent.as_extra(),
        created_at=NOW,
        updated_at=NOW,
    )


def message(title: str, *, files: int = 0, fields: tuple[str, ...] = (), jid: str = JID) -> MessageView:
    """The parts of a message the audit reads: the embed (title, fields, footer), attachments, deleted, history."""
    embed: dict[str, Any] = {
        "title": title,
        "footer": {"text": f"job {jid}"},
        "fields": [{"name": name, "value": "x"} for name in fields],
    }
    attachment = {"id": 1, "filename": "a.png", "size": 1, "url": "", "proxy_url": ""}
    view = {"id": 1, "channel_id": 7, "embeds": [embed], "attachments": [attachment] * files, "deleted": False}
    return cast(MessageView, {**view, "history": []})


def interaction(answer: str, interaction_id: int = 111) -> InteractionView:
    """An acknowledged interaction whose original response says `answer`."""
    view = {"id": interaction_id, "response": {"type": 5, "ephemeral": True, "data": {}, "at": ""}, "followups": []}
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


def unanswered(submission: Submission, *, late: frozenset[int] = frozenset()) -> list[str]:
    """The audit's problems for one submission the bot never acknowledged, recorded or ran."""
    silent = cast(InteractionView, {"id": 111, "response": None, "original_message": None, "followups": []})
    report, _verdicts = audit(
        [submission],
        {111: silent},
        [],
        [],
        [],
        {"totals": {"submitted": 0}},
        kills=0,
        redis_restarts=0,
        run_resets=0,
        crashes=0,
        cut_short=set(),
        settled=True,
        seed=1,
        late=late,
    )
    assert report.unanswered == 1
    return report.problems


def test_a_command_a_running_bot_received_and_never_answered_fails() -> None:
    """A submission given to a running bot, with no kill, no late delivery: it must have been answered."""
    assert unanswered(SUBMISSION) == ["never answered, though a running bot received it: #0000"]


def test_a_command_too_late_to_answer_or_given_to_no_running_bot_passes_unanswered() -> None:
    """Discord refused the bot's late first answer, or gave the command only to sessions of processes gone: the
    member hears nothing, and nothing was recorded or paid, so no problem."""
    assert unanswered(SUBMISSION, late=frozenset({0})) == []
    assert unanswered(replace(SUBMISSION, reached=False)) == []


def test_outcome_unknown_jobs_one_kill_cut_short_pass() -> None:
    """Two submits in flight when a gateway was killed both end "Outcome unknown": both explained, no problem."""
    second = replace(SUBMISSION, index=1, interaction_id=222, seed=100_001)
    unknown = record(JobState.DELIVERED, JobState.SUBMIT_UNKNOWN).model_copy(update={"runpod_id": None})
    records = [unknown, unknown.model_copy(update={"jid": "def456def456def4", "request_id": "222"})]
    cards = [
        message("Outcome unknown", fields=("Reason",)),
        message("Outcome unknown", fields=("Reason",), jid="def456def456def4"),
    ]
    report, _verdicts = audit(
        [SUBMISSION, second],
        {111: interaction(""), 222: interaction("", 222)},
        cards,
        records,
        [],
        {"totals": {"submitted": 0}},
        kills=1,
        redis_restarts=0,
        run_resets=0,
        crashes=0,
        cut_short={0, 1},
        settled=True,
        seed=1,
    )
    assert (report.submit_unknown, report.submit_unknown_cut_short, report.explained) == (2, 2, 2)
    assert report.problems == []


def run_with_upscale(
    press_record: TrackedJob, runpod: list[RunPodJob], sources: Mapping[int, int | None]
) -> ChaosReport:
    """SUBMISSION delivered, and U2 pressed on its result and delivered: the audit's report."""
    messages = [
        message("", files=2),
        message("", files=1, jid=PRESS_JID),
    ]
    report, _verdicts = audit(
        [SUBMISSION, UPSCALE],
        {111: interaction("Submitted — link"), 222: interaction("Submitted — link", 222)},
        messages,
        [record(JobState.DELIVERED, JobState.COMPLETED), press_record],
        [RunPodJob("rp-1", "COMPLETED", 100_000), *runpod],
        {"totals": {"submitted": 1 + len(runpod)}},
        kills=0,
        redis_restarts=0,
        run_resets=0,
        crashes=0,
        cut_short=set(),
        settled=True,
        seed=1,
        sources=sources,
    )
    return report


def test_a_press_delivered_once_from_the_image_it_names_passes() -> None:
    """U2 whose RunPod id was never stored is tied to its RunPod job by the image it enlarges: no problem."""
    pressed = upscale_record(Parent(JID, Derivation.UPSCALE, 2))
    report = run_with_upscale(pressed, [RunPodJob("rp-2", "COMPLETED", None, IMAGE_TWO)], {1: 2})
    assert report.problems == []
    assert (report.jobs, report.presses, report.presses_delivered, report.press_actions) == (2, 1, 1, {"upscale": 1})


def test_a_press_whose_job_names_another_parent_fails() -> None:
    """A press's job recorded as the upscale of another job's image fails the audit."""
    pressed = upscale_record(Parent("0123456789abcdef", Derivation.UPSCALE, 2), runpod_id="rp-2")
    report = run_with_upscale(pressed, [RunPodJob("rp-2", "COMPLETED", None, IMAGE_TWO)], {1: 2})
    assert report.wrong_parents == 1
    assert any("names Parent(jid='0123456789abcdef'" in problem for problem in report.problems)


def test_a_u2_result_drawn_from_image_one_fails() -> None:
    """A U2 result whose image shows image 1 of its parent fails the audit."""
    pressed = upscale_record(Parent(JID, Derivation.UPSCALE, 2), runpod_id="rp-2")
    report = run_with_upscale(pressed, [RunPodJob("rp-2", "COMPLETED", None, IMAGE_TWO)], {1: 1})
    assert report.wrong_sources == 1
    assert any("its image shows image 1 of the parent" in problem for problem in report.problems)


def test_a_second_runpod_job_for_one_upscale_press_is_a_paid_duplicate() -> None:
    """Two RunPod jobs enlarging the image of one U2 press fail the audit, though neither carries a seed."""
    pressed = upscale_record(Parent(JID, Derivation.UPSCALE, 2))
    runpod = [RunPodJob("rp-2", "COMPLETED", None, IMAGE_TWO), RunPodJob("rp-3", "COMPLETED", None, IMAGE_TWO)]
    report = run_with_upscale(pressed, runpod, {1: 2})
    assert report.paid_duplicates == 1
    assert report.unmatched_runpod_jobs == 0


def picture(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def test_drawn_from_tells_which_image_a_variation_or_an_upscale_started_from() -> None:
    """The emulator's variation of image 2 and its 2x upscale of image 2 are found drawn from image 2; an unrelated
    image from neither."""
    one, two = (picture(render_png("a cat", seed, 256, 256)) for seed in (100_000, 100_001))
    varied = picture(render_png("a cat", 7, 256, 256, background=two))
    enlarged = picture(enlarge_png(two, 2))
    unrelated = picture(render_png("a dog", 42, 256, 256))
    assert (drawn_from(varied, [one, two]), drawn_from(enlarged, [one, two])) == (2, 2)
    assert drawn_from(unrelated, [one, two]) is None


def gpu_problems(usage: GpuUsage, runpod_status: str = "COMPLETED", execution_ms: int | None = 1500) -> list[str]:
    """The audit of one delivered job that RunPod ran `execution_ms`, with what Redis counted."""
    done = record(JobState.DELIVERED, JobState.COMPLETED).model_copy(update={"runpod_status": runpod_status})
    report, _verdicts = audit(
        [SUBMISSION],
        {111: interaction("Submitted: job")},
        [message("Done"), message("", files=1)],
        [done],
        [RunPodJob("rp-1", "COMPLETED", 100_000, execution_ms=execution_ms)],
        {"totals": {"submitted": 1}},
        kills=0,
        redis_restarts=0,
        run_resets=0,
        crashes=0,
        cut_short=set(),
        settled=True,
        seed=1,
        usage=usage,
    )
    return report.problems


def test_gpu_time_counted_once_passes() -> None:
    """The job marked counted, and the sums hold its executionTime once: no problem."""
    assert gpu_problems(GpuUsage(jobs=1, gpu_ms=1500, counted=frozenset({JID}))) == []


def test_gpu_time_counted_twice_fails() -> None:
    """Sums that hold the job's executionTime twice fail the audit."""
    problems = gpu_problems(GpuUsage(jobs=2, gpu_ms=3000, counted=frozenset({JID})))
    assert any("usage sums hold 3000 ms for 2 jobs" in problem for problem in problems)


def test_gpu_time_never_counted_fails() -> None:
    """A job RunPod reported GPU time for, never counted, fails the audit."""
    problems = gpu_problems(GpuUsage(jobs=0, gpu_ms=0, counted=frozenset()))
    assert any(f"GPU time of job {JID} (1500 ms) not counted" in problem for problem in problems)


def test_gpu_time_counted_for_a_job_that_never_ran_fails() -> None:
    """A job cancelled before a worker started it (no executionTime) that is counted anyway fails the audit."""
    problems = gpu_problems(GpuUsage(jobs=1, gpu_ms=0, counted=frozenset({JID})), "CANCELLED", None)
    assert any("counted, but RunPod reported none" in problem for problem in problems)
