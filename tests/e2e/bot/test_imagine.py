"""/imagine end to end: card, progress, images, buttons, and every refusal a member can meet."""

from __future__ import annotations

import io
import itertools
import re
from datetime import datetime

import pytest
from PIL import Image

from tests.e2e.bot.conftest import (
    ATTACH_FILES,
    Harness,
    answer_text,
    buttons,
    cards,
    delivered,
    is_ephemeral,
    job_of,
    removed_cards,
    results,
    shown,
)
from tests.fakes.discord.views import MessageView
from tests.waiting import wait_until


async def test_imagine_posts_a_card_then_the_images_in_its_place(harness: Harness) -> None:
    """The card appears, is edited as the job moves, and the images arrive with buttons as the card goes."""
    harness.emulator.update_scenario(execution_s=2.0)
    async with harness.running():
        answer = await harness.imagine(prompt="a red fox in snow", seed=42, count=2)
        assert is_ephemeral(answer)
        assert answer_text(answer).startswith("Submitted")
        messages = await harness.wait_for_messages(delivered)
        (card,) = removed_cards(await harness.everything())
    assert cards(messages) == []
    (result,) = results(messages)
    jid = job_of(card)
    assert len(result["attachments"]) == 2
    for attachment in result["attachments"]:
        data = await harness.fake.attachment_bytes(attachment["url"])
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
    assert buttons(result) == [
        f"job:u1:{jid}",
        f"job:u2:{jid}",
        f"job:v1:{jid}",
        f"job:v2:{jid}",
        f"job:reroll:{jid}",
        f"job:remix:{jid}",
        f"job:info:{jid}",
        f"job:delete:{jid}",
    ]
    titles = [version["embeds"][0]["title"] for version in card["history"]]
    assert titles[0] == "Submitting…"
    assert any(title.startswith("Generating") or title == "Queued" for title in titles[1:])
    assert "seed 42" in shown(result)


async def test_reroll_makes_a_new_job_with_the_same_parameters_and_a_new_seed(harness: Harness) -> None:
    """Re-roll keeps prompt, size and steps, and changes the seed; the new job is the clicker's (here a moderator)."""
    async with harness.running():
        await harness.imagine(prompt="a blue whale", seed=7, steps=12)
        messages = await harness.wait_for_messages(delivered)
        (result,) = results(messages)
        jid = job_of(result)
        click = await harness.fake.click_button(result["id"], f"job:reroll:{jid}", harness.mod)
        answer = await harness.answered(click)
        assert answer_text(answer).startswith("Submitted")
        messages = await harness.wait_for_messages(lambda found: len(results(found)) == 2)
    first, second = [await harness.redis_jobs(job_of(result)) for result in results(messages)]
    assert first.request["prompt"] == second.request["prompt"] == "a blue whale"
    assert first.request["steps"] == second.request["steps"] == 12
    assert first.request["seed"] != second.request["seed"]
    assert second.user_id == harness.mod


async def test_missing_attach_files_is_refused_naming_the_permission(harness: Harness) -> None:
    """In a channel where the bot cannot attach files, /imagine says so and starts nothing."""
    channel = await harness.fake.create_channel(harness.guild_id, "no-files")
    everything = (await harness.fake.channel(channel["id"]))["bot_permissions"]
    await harness.fake.set_bot_permissions(channel["id"], everything & ~ATTACH_FILES)
    async with harness.running():
        answer = await harness.imagine(channel_id=channel["id"])
    assert is_ephemeral(answer)
    assert "**Attach Files**" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 0
    assert await harness.fake.channel_messages(channel["id"]) == []


async def test_invalid_option_gives_the_allowed_range(harness: Harness) -> None:
    """An out-of-range option is refused in an ephemeral message naming the option and its range."""
    async with harness.running():
        answer = await harness.imagine(steps=500)
    assert is_ephemeral(answer)
    assert "`steps` 500 is out of range. Allowed: 1–60." in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 0


async def test_everyone_in_a_prompt_pings_nobody(harness: Harness) -> None:
    """A prompt with @everyone and a role mention is shown but pings nobody on the card; the result only its owner."""
    async with harness.running():
        await harness.imagine(prompt=f"@everyone look <@&{harness.guild_id}> <@{harness.bob}>")
        await harness.wait_for_messages(delivered)
        everything = await harness.everything()
    (card,) = removed_cards(everything)
    (result,) = results(everything)
    assert not card["pinged_anyone"]
    assert result["pings"] == {"users": [harness.alice], "roles": [], "everyone": False, "replied_user": None}


async def test_cooldown_refuses_with_the_time_to_wait(harness: Harness) -> None:
    """A second submit within the cooldown is refused with the seconds left."""
    async with harness.running(user_cooldown_s=30):
        await harness.imagine()
        answer = await harness.imagine(prompt="again")
    assert re.search(r"you can submit again in (29|30) s", answer_text(answer))
    assert harness.emulator.counters.request_count("run") == 1


async def test_quota_refuses_and_says_when_to_try_again(harness: Harness) -> None:
    """A member at the active-job limit is told the limit and that a finished or cancelled job frees a place."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running(user_active_jobs=1):
        await harness.imagine()
        answer = await harness.imagine(prompt="second")
    text = answer_text(answer)
    assert "You already have 1 job in progress (the limit is 1)" in text
    assert "as soon as one finishes" in text
    assert harness.emulator.counters.request_count("run") == 1


async def test_denylisted_term_is_refused(harness: Harness) -> None:
    """A term a moderator put on the guild's deny-list is refused with the term named."""
    async with harness.running():
        added = await harness.fake.invoke_command(harness.channel_id, harness.mod, "denylist add", {"term": "Gore"})
        assert "now refused" in answer_text(await harness.answered(added))
        answer = await harness.imagine(prompt="lots of gore here")
    assert "“Gore”" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 0


async def test_oversized_result_is_reencoded_to_fit_the_channel(harness: Harness) -> None:
    """A 25 MB PNG in a channel with a 10 MiB limit is delivered, re-encoded under the limit."""
    await harness.fake.set_upload_limit(harness.channel_id, 10 * 1024 * 1024)
    async with harness.running():
        await harness.imagine(prompt="[emulator:oversized] huge")
        messages = await harness.wait_for_messages(lambda found: bool(results(found)), timeout_s=60)
    (result,) = results(messages)
    (attachment,) = result["attachments"]
    assert attachment["size"] <= 10 * 1024 * 1024
    assert attachment["filename"].endswith((".webp", ".jpg"))
    data = await harness.fake.attachment_bytes(attachment["url"])
    with Image.open(io.BytesIO(data)) as image:
        assert image.width >= 64
    assert "Re-encoded to fit this channel's upload limit." in shown(result)


async def test_failure_reason_is_shown_on_the_card_with_retry(harness: Harness) -> None:
    """A worker's JSON error shows its message on the card (no traceback), with a Retry button."""
    async with harness.running():
        await harness.imagine(prompt="[emulator:fail-json] broken")

        def failed(found: list[MessageView]) -> bool:
            return any(card["embeds"][0]["title"] == "Failed" for card in cards(found))

        messages = await harness.wait_for_messages(failed)
    (card,) = cards(messages)
    fields = {field["name"]: field["value"] for field in card["embeds"][0]["fields"]}
    assert "Reason" in fields
    assert "Traceback" not in fields["Reason"]
    assert buttons(card) == [f"job:retry:{job_of(card)}"]
    assert results(messages) == []


@pytest.mark.parametrize(("fault", "title"), [("server_error", "Failed"), ("reset", "Outcome unknown")])
async def test_job_whose_run_fails_shows_its_outcome_on_the_card(harness: Harness, fault: str, title: str) -> None:
    """A /run refused by RunPod, or reset after RunPod took it, leaves the card showing the outcome and why."""
    harness.emulator.script_faults("run", fault)
    async with harness.running():
        await harness.imagine()

        def final(found: list[MessageView]) -> bool:
            return any(card["embeds"][0]["title"] == title for card in cards(found))

        messages = await harness.wait_for_messages(final)
    (card,) = cards(messages)
    assert "Reason" in {field["name"] for field in card["embeds"][0]["fields"]}
    assert buttons(card) == [f"job:retry:{job_of(card)}"]


async def test_job_outliving_the_interaction_token_is_still_delivered(harness: Harness) -> None:
    """A job that finishes after the 15-minute interaction token died is delivered through the channel."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        await harness.imagine()
        await harness.fake.advance_clock(16 * 60)
        harness.emulator.update_scenario(workers=2)
        messages = await harness.wait_for_messages(delivered)
    assert len(results(messages)) == 1


async def test_unexpected_error_shows_an_error_id_and_starts_nothing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """When Discord refuses the job card, the member gets an error id, the log has it, and no /run is sent."""
    await harness.fake.inject_error(
        status=400, code=50035, method="POST", path=rf"/channels/{harness.channel_id}/messages$", count=1
    )
    async with harness.running():
        answer = await harness.imagine()
    text = answer_text(answer)
    match = re.search(r"error id `([0-9a-f]{8})`", text)
    assert match is not None, text
    assert match.group(1) in caplog.text
    assert "Traceback" not in text
    assert harness.emulator.counters.request_count("run") == 0


async def test_private_job_is_delivered_by_direct_message(harness: Harness) -> None:
    """With private, the card and the images go to the member's DMs, not the channel; Re-roll works there."""
    async with harness.running():
        answer = await harness.imagine(prompt="a secret garden", private=True)
        assert answer_text(answer).startswith("Submitted")
        dm = await harness.fake.dm_channel(harness.alice)
        assert dm is not None

        async def dm_results(count: int) -> list[MessageView]:
            found: list[MessageView] = []

            async def check() -> bool:
                nonlocal found
                found = await harness.fake.channel_messages(dm["id"])
                return len(results(found)) >= count and not cards(found)

            await wait_until(check)
            return found

        messages = await dm_results(1)
        (result,) = results(messages)
        click = await harness.fake.click_button(result["id"], f"job:reroll:{job_of(result)}", harness.alice)
        assert answer_text(await harness.answered(click)).startswith("Submitted")
        messages = await dm_results(2)
    assert len(results(messages)) == 2
    assert cards(messages) == []
    assert await harness.messages() == []


async def test_private_job_with_closed_dms_is_refused(harness: Harness) -> None:
    """A member whose DMs are closed is told so, and nothing is started."""
    await harness.fake.set_dms_open(harness.alice, False)
    async with harness.running():
        answer = await harness.imagine(private=True)
    assert "try without `private`" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 0


async def test_queued_card_explains_the_wait(harness: Harness) -> None:
    """While no GPU is free, the card says why in words (here: RunPod is throttling the workers)."""
    harness.emulator.update_scenario(workers=0, throttled_workers=2)
    async with harness.running():
        await harness.imagine()

        def explained(found: list[MessageView]) -> bool:
            fields = [field for card in cards(found) for field in card["embeds"][0].get("fields", [])]
            return any(field["name"] == "Why the wait" for field in fields)

        messages = await harness.wait_for_messages(explained)
    fields = {field["name"]: field["value"] for field in cards(messages)[0]["embeds"][0]["fields"]}
    assert fields["Why the wait"].startswith("throttled")
    assert fields["In the queue since"].startswith("<t:")


@pytest.mark.serial
async def test_card_edits_are_coalesced(harness: Harness) -> None:
    """Progress edits to one card are at least CARD_EDIT_INTERVAL_S apart, and none repeats the previous one."""
    harness.emulator.update_scenario(execution_s=3.0)
    async with harness.running(card_edit_interval_s=1.0):
        await harness.imagine(steps=30)
        await harness.wait_for_messages(delivered, timeout_s=30)
        (card,) = removed_cards(await harness.everything())
    versions = card["history"]
    progress = versions[1:]  # after the first post (the card goes when the result comes)
    moments = [datetime.fromisoformat(version["at"]) for version in progress]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(moments)]
    assert len(progress) >= 2
    assert all(gap >= 0.95 for gap in gaps), gaps
    embeds = [version["embeds"] for version in versions]
    assert all(before != after for before, after in itertools.pairwise(embeds))
