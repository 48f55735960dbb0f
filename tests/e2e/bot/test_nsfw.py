"""The NSFW rules through the real bot: NSFW prompts only in age-restricted channels (Discord's channel flag), a
server's own NSFW terms and its choice to allow none, and a worker's NSFW failure in words."""

from __future__ import annotations

from typing import Any

from tests.e2e.bot.conftest import Harness, answer_text, cards
from tests.waiting import wait_until


async def settings(harness: Harness, command: str, **options: Any) -> str:
    """A /settings subcommand, as the moderator in #general; what they read."""
    interaction = await harness.fake.invoke_command(harness.channel_id, harness.mod, f"settings {command}", options)
    return answer_text(await harness.answered(interaction))


async def age_restricted_channel(harness: Harness) -> int:
    channel = await harness.fake.create_channel(harness.guild_id, "after-dark", nsfw=True)
    return channel["id"]


async def test_nsfw_prompt_is_refused_in_an_ordinary_channel(harness: Harness) -> None:
    """A prompt with a default NSFW term, in a channel that is not age-restricted, is refused in words; nothing runs."""
    async with harness.running():
        answer = answer_text(await harness.imagine(prompt="a nud\u0435 portrait in oils"))
    assert "“nude”" in answer
    assert "only in age-restricted channels" in answer
    assert "ask a moderator" in answer
    assert harness.emulator.counters.request_count("run") == 0


async def test_nsfw_prompt_is_allowed_in_an_age_restricted_channel(harness: Harness) -> None:
    """The same prompt in an age-restricted channel is submitted."""
    async with harness.running():
        channel_id = await age_restricted_channel(harness)
        answer = answer_text(await harness.imagine(channel_id=channel_id, prompt="a nude portrait in oils"))
    assert answer.startswith("Submitted"), answer


async def test_nsfw_words_in_the_negative_prompt_are_not_refused(harness: Harness) -> None:
    """Keeping NSFW out (a negative prompt naming it) is not an NSFW prompt."""
    async with harness.running():
        answer = answer_text(await harness.imagine(prompt="a beach at noon", negative="nude, nsfw"))
    assert answer.startswith("Submitted"), answer


async def test_private_nsfw_job_is_refused_even_from_an_age_restricted_channel(harness: Harness) -> None:
    """A private result goes by direct message, which is not age-restricted: the NSFW prompt is refused."""
    async with harness.running():
        channel_id = await age_restricted_channel(harness)
        answered = await harness.imagine(channel_id=channel_id, prompt="a nude portrait", private=True)
    answer = answer_text(answered)
    assert "direct message" in answer
    assert harness.emulator.counters.request_count("run") == 0


async def test_server_nsfw_term_is_refused_outside_age_restricted_channels(harness: Harness) -> None:
    """A term a moderator adds to the server's NSFW terms refuses prompts in ordinary channels only."""
    async with harness.running():
        added = await settings(harness, "nsfw add", term="Spicy Tacos")
        refused = answer_text(await harness.imagine(prompt="a plate of spicy  tacos"))
        channel_id = await age_restricted_channel(harness)
        allowed = answer_text(await harness.imagine(channel_id=channel_id, prompt="a plate of spicy tacos"))
    assert "Spicy Tacos" in added
    assert "“Spicy Tacos”" in refused
    assert "only in age-restricted channels" in refused
    assert allowed.startswith("Submitted"), allowed


async def test_server_that_allows_no_nsfw_refuses_it_in_age_restricted_channels(harness: Harness) -> None:
    """With /settings nsfw mode never, an NSFW prompt is refused even in an age-restricted channel, saying so."""
    async with harness.running():
        changed = await settings(harness, "nsfw mode", mode="never")
        channel_id = await age_restricted_channel(harness)
        refused = answer_text(await harness.imagine(channel_id=channel_id, prompt="a nude portrait"))
    assert changed.startswith("Changed:"), changed
    assert "allows no NSFW prompts in any channel" in refused
    assert harness.emulator.counters.request_count("run") == 0


async def test_worker_nsfw_failure_is_explained_on_the_card(harness: Harness) -> None:
    """A worker whose safety checker withheld every image fails the job (even in an age-restricted channel); the card
    says so in words."""
    async with harness.running():
        channel_id = await age_restricted_channel(harness)
        await harness.imagine(channel_id=channel_id, prompt="a nude portrait [emulator:safety-checker]")

        async def failed() -> bool:
            found = cards(await harness.fake.channel_messages(channel_id))
            return any(card["embeds"][0]["title"] == "Failed" for card in found)

        await wait_until(failed)
        (card,) = cards(await harness.fake.channel_messages(channel_id))
    reason = {field["name"]: field["value"] for field in card["embeds"][0]["fields"]}["Reason"]
    assert "safety checker" in reason
    assert "no image" in reason
    assert "Traceback" not in reason
