"""What /cancel tells the member, and what the card shows, when RunPod answers the cancel in each of its ways."""

from __future__ import annotations

from typing import Any

from tests.e2e.bot.conftest import Harness, answer_text, cards, job_of
from tests.fakes.discord.views import MessageView
from tests.waiting import wait_until

# The poller stays out of the way (its next poll is a minute off), so the card shows what the cancel met.
NO_POLLING: dict[str, Any] = {
    "poll_first_ms": 60_000,
    "poll_queued_min_ms": 60_000,
    "poll_queued_max_ms": 60_000,
    "poll_running_min_ms": 60_000,
    "poll_running_max_ms": 60_000,
}


async def queued_card(harness: Harness) -> MessageView:
    await harness.imagine()
    messages = await harness.wait_for_messages(
        lambda found: any(card["embeds"][0]["title"] == "Queued" for card in cards(found))
    )
    return cards(messages)[0]


async def cancel(harness: Harness, jid: str) -> str:
    interaction = await harness.fake.invoke_command(harness.channel_id, harness.alice, "cancel", {"job": jid})
    return answer_text(await harness.answered(interaction))


async def card_cancel_note(harness: Harness, card: MessageView, words: str) -> str:
    """The card's "Cancel" field, once it contains `words`."""
    note = ""

    async def shown() -> bool:
        nonlocal note
        message = await harness.fake.message(card["id"])
        fields = {field["name"]: field["value"] for field in message["embeds"][0]["fields"]}
        note = fields.get("Cancel", "")
        return words in note

    await wait_until(shown, timeout_s=10)
    return note


async def test_cancel_of_a_job_runpod_no_longer_knows_says_so(harness: Harness) -> None:
    """RunPod answers the cancel with 404: the reply and the card say RunPod no longer knows the job."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running(**NO_POLLING):
        card = await queued_card(harness)
        harness.emulator.reset()  # RunPod forgets every job: /cancel and /status are 404 from now on
        answer = await cancel(harness, job_of(card))
        assert "RunPod no longer knows" in answer
        assert "Cancelling" not in answer
        note = await card_cancel_note(harness, card, "no longer knows")
    assert "nothing is running" in note


async def test_cancel_of_a_job_that_already_finished_at_runpod_says_so(harness: Harness) -> None:
    """RunPod answers the cancel with a finished state: the reply and the card say the job had already finished."""
    async with harness.running(**NO_POLLING):
        card = await queued_card(harness)

        async def finished_at_runpod() -> bool:
            jobs = harness.emulator.snapshot()["jobs"]
            return bool(jobs.get("COMPLETED"))

        await wait_until(finished_at_runpod, timeout_s=10)
        answer = await cancel(harness, job_of(card))
        assert "already finished at RunPod (completed)" in answer
        assert "Cancelling" not in answer
        note = await card_cancel_note(harness, card, "already finished")
    assert f"<@{harness.alice}>" in note


async def test_cancel_refused_by_runpod_says_so(harness: Harness) -> None:
    """RunPod refuses the cancel (every attempt fails): the reply and the card say so and that the bot asks again."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running(**NO_POLLING):
        card = await queued_card(harness)
        harness.emulator.script_faults("cancel", *["server_error"] * 4)
        answer = await cancel(harness, job_of(card))
        assert "RunPod refused to cancel" in answer
        assert "asks again" in answer
        note = await card_cancel_note(harness, card, "refused")
    assert "RunPod refused" in note
