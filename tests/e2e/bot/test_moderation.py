"""/cancel, the Cancel button, /health and /jobs, as members and moderators use them."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.bot.conftest import (
    Harness,
    answer_text,
    buttons,
    cards,
    delivered,
    final_message,
    is_ephemeral,
    job_of,
    results,
)
from tests.fakes.discord.views import MessageView


def titled(title: str) -> Callable[[list[MessageView]], bool]:
    def check(found: list[MessageView]) -> bool:
        return any(card["embeds"][0]["title"] == title for card in cards(found))

    return check


async def queued_card(harness: Harness, user_id: int | None = None) -> MessageView:
    await harness.imagine(user_id=user_id)
    messages = await harness.wait_for_messages(lambda found: bool(cards(found)))
    return cards(messages)[-1]


async def test_owner_cancels_a_queued_job_with_the_command(harness: Harness) -> None:
    """/cancel by the owner ends a queued job; the card says who cancelled and nothing is posted."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        card = await queued_card(harness)
        jid = job_of(card)
        answer = await harness.answered(
            await harness.fake.invoke_command(harness.channel_id, harness.alice, "cancel", {"job": jid})
        )
        assert "Cancelling job" in answer_text(answer)
        messages = await harness.wait_for_messages(titled("Cancelled"))
    (card,) = cards(messages)
    fields = {field["name"]: field["value"] for field in card["embeds"][0]["fields"]}
    assert fields["Cancelled by"] == f"<@{harness.alice}>"
    assert results(messages) == []


async def test_moderator_cancels_a_running_job_with_the_button(harness: Harness) -> None:
    """A moderator's click on Cancel stops another member's running job."""
    harness.emulator.update_scenario(execution_s=30)
    async with harness.running():
        await harness.imagine(prompt="[emulator:hang] long")
        messages = await harness.wait_for_messages(
            lambda found: any(card["embeds"][0]["title"].startswith("Generating") for card in cards(found))
        )
        card = cards(messages)[0]
        click = await harness.fake.click_button(card["id"], f"job:cancel:{job_of(card)}", harness.mod)
        assert "Cancelling job" in answer_text(await harness.answered(click))
        messages = await harness.wait_for_messages(titled("Cancelled"))
    fields = {field["name"]: field["value"] for field in cards(messages)[0]["embeds"][0]["fields"]}
    assert fields["Cancelled by"] == f"<@{harness.mod}>"


async def test_another_member_cannot_cancel(harness: Harness) -> None:
    """Bob, who moderates a server of his own, is a plain member here: he cannot cancel Alice's job, by command or by
    button; the job carries on."""
    harness.emulator.update_scenario(workers=0)
    await harness.other_guild(owner_id=harness.bob)
    async with harness.running():
        card = await queued_card(harness)
        jid = job_of(card)
        by_command = await harness.answered(
            await harness.fake.invoke_command(harness.channel_id, harness.bob, "cancel", {"job": jid})
        )
        by_button = await harness.answered(
            await harness.fake.click_button(card["id"], f"job:cancel:{jid}", harness.bob)
        )
    for answer in (by_command, by_button):
        assert f"Only the member who started job `{jid}` or a moderator of its server can cancel it." in answer_text(
            answer
        )
    assert harness.emulator.counters.request_count("cancel") == 0


async def test_cancel_autocomplete_offers_your_jobs_and_a_moderator_the_guilds(harness: Harness) -> None:
    """Members see their own active jobs in /cancel's choices; a moderator sees everyone's."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        await harness.imagine(prompt="alice's dragon")
        await harness.imagine(user_id=harness.bob, prompt="bob's castle")
        await harness.wait_for_messages(lambda found: len(cards(found)) == 2)
        for_bob = await harness.fake.autocomplete_choices(harness.channel_id, harness.bob, "cancel", {"job": ""}, "job")
        for_mod = await harness.fake.autocomplete_choices(harness.channel_id, harness.mod, "cancel", {"job": ""}, "job")
    assert [choice["name"] for choice in for_bob] == ["queued · bob's castle"]
    assert sorted(choice["name"] for choice in for_mod) == ["queued · alice's dragon", "queued · bob's castle"]


async def test_late_result_after_cancel_is_not_posted(harness: Harness) -> None:
    """If RunPod finishes a job whose cancel did not get through, the images are not posted."""
    harness.emulator.update_scenario(execution_s=1.0)
    async with harness.running():
        card = await queued_card(harness)
        harness.emulator.script_faults("cancel", *["server_error"] * 30)
        await harness.answered(
            await harness.fake.invoke_command(harness.channel_id, harness.alice, "cancel", {"job": job_of(card)})
        )
        messages = await harness.wait_for_messages(titled("Cancelled"))
    assert results(messages) == []


async def test_health_is_refused_to_a_member(harness: Harness) -> None:
    """A plain member gets a refusal, checked in code."""
    async with harness.running():
        answer = await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.alice, "health"))
    assert is_ephemeral(answer)
    assert "Only moderators can see the endpoints' health" in answer_text(answer)
    # The permission as Discord's client names it, not discord.py's `manage_guild`.
    assert "the **Manage Server** permission" in answer_text(answer)


async def test_health_shows_a_moderator_the_endpoint(harness: Harness) -> None:
    """A moderator sees the workers, their server's jobs, and a Refresh button."""
    harness.emulator.update_scenario(throttled_workers=3)
    async with harness.running():
        answer = await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.mod, "health"))
    assert is_ephemeral(answer)
    message = final_message(answer)
    (embed,) = message["embeds"]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert "throttled 3" in fields["Workers"]
    assert fields["This server's jobs"].startswith("0 active")
    assert buttons(message) == ["health:refresh:*"]


async def test_jobs_lists_your_recent_jobs_with_links(harness: Harness) -> None:
    """/jobs shows the member's jobs with their state and a link to each result; others' jobs need a moderator."""
    async with harness.running():
        await harness.imagine(prompt="first picture")
        messages = await harness.wait_for_messages(delivered)
        mine = await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.alice, "jobs"))
        nosy = await harness.answered(
            await harness.fake.invoke_command(harness.channel_id, harness.bob, "jobs", {"member": harness.alice})
        )
        moderator = await harness.answered(
            await harness.fake.invoke_command(harness.channel_id, harness.mod, "jobs", {"member": harness.alice})
        )
    result = results(messages)[0]
    description = final_message(mine)["embeds"][0]["description"]
    assert "first picture" in description
    assert f"/{harness.channel_id}/{result['id']}" in description
    assert "Only moderators can see another member's jobs." in answer_text(nosy)
    assert "first picture" in final_message(moderator)["embeds"][0]["description"]
