"""Discord's own failures during a submit (a 503 on the job card's post or on its edits): the member is told the
truth, and the card ends showing the job's outcome."""

from __future__ import annotations

import re

import pytest

from tests.e2e.bot.conftest import Harness, answer_text, buttons, cards, delivered, job_of, results
from tests.fakes.discord.views import MessageView

CARD_EDIT = r"/channels/\d+/messages/\d+$"
# The first poll comes this long after the submit: the submit's own edit of the card is surely the first.
LATE_FIRST_POLL_MS = 2_000


async def test_card_post_answered_503_says_discord_failed_and_starts_nothing(harness: Harness) -> None:
    """When Discord answers the job card's post 503, the member reads that Discord failed (no error id), and no
    /run is sent."""
    await harness.fake.inject_error(
        status=503, message="upstream connect error", method="POST", path=rf"/channels/{harness.channel_id}/messages$"
    )
    async with harness.running():
        answer = await harness.imagine()
    text = answer_text(answer)
    assert "error id" not in text
    assert "Discord is having trouble right now (it answered the job card with 503" in text
    assert "so I started nothing. Please try again in a moment." in text
    assert harness.emulator.counters.request_count("run") == 0


async def test_first_card_edit_answered_503_still_tells_the_member_where_the_job_is(harness: Harness) -> None:
    """A 503 on the card's first edit (right after RunPod took the job) does not turn the member's answer into an
    error: it links the card, and the images arrive."""
    await harness.fake.inject_error(status=503, method="PATCH", path=CARD_EDIT)
    async with harness.running(poll_first_ms=LATE_FIRST_POLL_MS):
        answer = await harness.imagine()
        assert answer_text(answer).startswith("Submitted")
        messages = await harness.wait_for_messages(delivered)
    assert len(results(messages)) == 1


async def test_outcome_of_a_reset_run_reaches_the_card_after_a_503_on_its_edit(harness: Harness) -> None:
    """A /run reset after RunPod took the job: when Discord answers the card's outcome edit 503, the card still
    ends showing "Outcome unknown" with the reason (a poller shows it again), never "Submitting…" for good."""
    harness.emulator.script_faults("run", "reset")
    await harness.fake.inject_error(status=503, method="PATCH", path=CARD_EDIT)
    async with harness.running(delivery_lease_ms=1_000):
        answer = await harness.imagine()
        assert "may or may not be running" in answer_text(answer)

        def final(found: list[MessageView]) -> bool:
            return any(card["embeds"][0]["title"] == "Outcome unknown" for card in cards(found))

        messages = await harness.wait_for_messages(final, timeout_s=10)
    (card,) = cards(messages)
    assert "Reason" in {field["name"] for field in card["embeds"][0]["fields"]}
    assert buttons(card) == [f"job:retry:{job_of(card)}"]
    job = await harness.redis_jobs(job_of(card))
    assert job.state.value == "DELIVERED"


async def test_command_reaching_the_bot_after_discords_deadline_is_let_go_quietly(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A command the gateway delivers after Discord's 3 s (the connection stalled): the bot tries its one
    acknowledgement, which Discord refuses, starts nothing, logs a warning (no "unexpected error" with an error
    id nobody will see) and sends no second answer Discord would refuse too."""
    async with harness.running():
        (session,) = await harness.fake.wait_for_sessions()
        await harness.fake.stall_connection(session["id"])
        interaction = await harness.fake.invoke_command(
            harness.channel_id, harness.alice, "imagine", {"prompt": "a lighthouse"}
        )
        await harness.fake.advance_clock(3.5)
        await harness.fake.drop_connection(session["id"])
        await harness.fake.wait_for_resume(session["id"])
        callback = rf"^/interactions/{interaction['id']}/[^/]+/callback$"
        await harness.fake.wait_for_requests(lambda request: re.match(callback, request["path"]) is not None)
        # Anything else the bot would do for this command (an error answer) comes at once after its refusal.
        await harness.imagine()
    answers = [r for r in await harness.fake.requests() if re.match(callback, r["path"])]
    assert [(r["status"], r["code"]) for r in answers] == [(404, 10062)]
    assert "unexpected error" not in caplog.text
    assert f"interaction {interaction['id']} came too late to answer" in caplog.text
    assert harness.emulator.counters.request_count("run") == 1
