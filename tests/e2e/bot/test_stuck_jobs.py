"""Jobs that RunPod will not let the bot finish: the card says why the bot stopped waiting."""

from __future__ import annotations

from tests.e2e.bot.conftest import Harness, cards
from tests.fakes.discord.views import MessageView

# Failed /status checks are retried every 50 ms and give up after 0.4 s (and at least 3 in a row).
SHORT_ERROR_LIVES = {
    "error_retry_ms": 50,
    "auth_error_retry_ms": 50,
    "refused_error_life_ms": 400,
    "auth_error_life_ms": 400,
    "outage_error_life_ms": 400,
}


def failed(found: list[MessageView]) -> bool:
    return any(card["embeds"][0]["title"] == "Failed" for card in cards(found))


async def test_card_says_why_a_job_whose_status_checks_keep_answering_400_was_stopped(harness: Harness) -> None:
    """A job whose /status keeps answering 400 ends with its card showing Failed and the reason."""
    harness.emulator.update_scenario(faults={"status": {"bad_request": 1.0}})
    async with harness.running(poller=SHORT_ERROR_LIVES):
        await harness.imagine(prompt="a lighthouse [emulator:hang]")
        messages = await harness.wait_for_messages(failed)
    (card,) = cards(messages)
    fields = {field["name"]: field["value"] for field in card["embeds"][0]["fields"]}
    assert "RunPod kept answering 400 Bad Request to this job's status checks" in fields["Reason"]
    assert "asked RunPod to cancel it" in fields["Reason"]
    assert harness.emulator.counters.request_count("cancel", 200) == 1
